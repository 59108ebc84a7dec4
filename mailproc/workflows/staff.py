"""The agents of a running process: the configured ``[identity] agents`` merged with those
``mailproc agents add`` stored, re-read at each batch so that a running ``serve`` sees an
agent added, changed or removed without a restart. A configured agent wins over a stored one
of the same name or address (the stored one is left out, with a warning)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailproc.config import Settings
from mailproc.core.addresses import normalize_address
from mailproc.core.identity import UNCONFIGURED, Agent, AgentRole, IdentityPolicy, merge_agents
from mailproc.errors import NotFoundError, PermanentError
from mailproc.store import agents as store

log = logging.getLogger(__name__)


class Staff:
    """The current agents and the identity policy built on them (one per App, shared)."""

    def __init__(self, settings: Settings) -> None:
        identity = settings.identity
        self.configured = tuple(
            Agent(a.name, frozenset(AgentRole(r) for r in a.roles), a.addresses)
            for a in identity.agents
        )
        self._template = IdentityPolicy(
            trusted_authserv_id=identity.trusted_authserv_id or None,
            trust_from_address=identity.trust_from_address,
            own_addresses=settings.support.addresses,
        )
        self._stored: tuple[store.StoredAgent, ...] | None = None
        self._warned = False  # about agents whose mail is refused: once per process
        self.agents: tuple[Agent, ...] = self.configured
        self.identity = dataclasses.replace(self._template, agents=self.configured)

    def refresh(self, session: Session) -> None:
        """Re-read the stored agents (one small query); rebuild only when they changed."""
        stored = store.stored_agents(session)
        if stored == self._stored:
            return
        agents, notes = merge_agents(self.configured, stored)
        for note in notes:
            log.warning("%s", note)
        policy = self._template
        unconfigured = policy.trusted_authserv_id is None and not policy.trust_from_address
        if agents and unconfigured and not self._warned:
            log.warning("agents' mail is refused: %s", UNCONFIGURED)
            self._warned = True
        self.identity = dataclasses.replace(policy, agents=agents)
        self.agents = agents
        self._stored = stored

    @property
    def stored(self) -> tuple[store.StoredAgent, ...]:
        """The stored agents as last read by ``refresh`` (none before it)."""
        return self._stored or ()


@dataclass(frozen=True, slots=True)
class AgentEntry:
    """One agent as ``mailproc agents list`` shows it."""

    name: str
    roles: tuple[str, ...]
    addresses: tuple[str, ...]
    source: str  # "config" or "stored"
    active: bool  # False: a stored agent left out (a configured one holds its name or address)


def list_agents(session: Session, staff: Staff) -> list[AgentEntry]:
    """The configured agents, then the stored ones, each marked active or left out."""
    staff.refresh(session)
    entries = [
        AgentEntry(a.name, tuple(sorted(a.roles)), a.addresses, "config", True)
        for a in staff.configured
    ]
    active = {a.name for a in staff.agents[len(staff.configured) :]}  # the stored kept
    for name, roles, addresses in staff.stored:
        entries.append(AgentEntry(name, roles, addresses, "stored", name in active))
    return entries


def add_agent(
    session: Session,
    staff: Staff,
    name: str,
    roles: Sequence[str],
    addresses: Sequence[str],
    now: dt.datetime,
) -> AgentEntry:
    """Store a new agent (roles are AgentRole values; none: ``agent``); refuse a bad address,
    or a name or address that an agent (configured or stored) or the support desk has."""
    name = name.strip()
    if not name or len(name) > 100:
        raise PermanentError("an agent's name takes 1 to 100 characters")
    normalized = []
    for address in addresses:
        canonical = normalize_address(address)
        if canonical is None:
            raise PermanentError(f"{address!r} is not a valid mail address")
        normalized.append(canonical)
    if not normalized:
        raise PermanentError("an agent needs at least one --address")
    current = list_agents(session, staff)
    if any(entry.name.casefold() == name.casefold() for entry in current):
        raise PermanentError(f"there is already an agent named {name!r}")
    for address in normalized:
        if address in staff.identity.own_addresses:
            raise PermanentError(f"{address} is a support address, not an agent's")
        holder = next((e.name for e in current if address in e.addresses), None)
        if holder is not None:
            raise PermanentError(f"{address} is already the address of agent {holder}")
    ordered = tuple(dict.fromkeys(AgentRole(role).value for role in roles or ("agent",)))
    unique = tuple(dict.fromkeys(normalized))
    store.add_agent(session, name, ordered, unique, now)
    staff.refresh(session)
    return AgentEntry(name, ordered, unique, "stored", True)


def remove_agent(session: Session, staff: Staff, name: str) -> None:
    """Remove a stored agent; a configured one is removed from the config file instead."""
    if any(a.name.casefold() == name.strip().casefold() for a in staff.configured):
        raise PermanentError(
            f"agent {name!r} is configured in [identity] agents: remove it from the config file"
        )
    if not store.remove_agent(session, name):
        raise NotFoundError(f"no stored agent named {name!r}")
    staff.refresh(session)
