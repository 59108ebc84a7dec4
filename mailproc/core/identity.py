"""Sender identity: agent (address plus authentication), customer or unknown; lookalike flags."""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from enum import StrEnum
from functools import lru_cache

from mailproc.core.addresses import has_forbidden_chars, normalize_address, normalize_domain
from mailproc.core.model import Customer, ParsedMessage


class AgentRole(StrEnum):
    """The roles the support procedures name."""

    AGENT = "agent"
    SUPPORT_MANAGER = "support_manager"
    SUPPORT_DIRECTOR = "support_director"
    FINANCE_DIRECTOR = "finance_director"
    DEVOPS = "devops"
    ENGINEERING = "engineering"
    PRODUCT = "product"
    CTO = "cto"


@dataclass(frozen=True, slots=True)
class Agent:
    """A staff member: name, roles and the addresses they write from (normalized on creation)."""

    name: str
    roles: frozenset[AgentRole]
    addresses: tuple[str, ...]

    def __post_init__(self) -> None:
        normalized = tuple(normalize_address(a) for a in self.addresses)
        if not normalized or None in normalized:
            raise ValueError(f"agent {self.name!r} needs valid addresses, got {self.addresses}")
        object.__setattr__(self, "addresses", tuple(a for a in normalized if a))


def merge_agents(
    configured: Sequence[Agent], stored: Iterable[tuple[str, Sequence[str], Sequence[str]]]
) -> tuple[tuple[Agent, ...], tuple[str, ...]]:
    """The configured agents, then each stored (name, roles, addresses) whose name and
    addresses no earlier agent holds: the configured win. Also a note per stored agent left
    out, and why."""
    agents = list(configured)
    notes: list[str] = []
    for name, roles, addresses in stored:
        try:
            agent = Agent(name, frozenset(AgentRole(role) for role in roles), tuple(addresses))
        except ValueError as error:
            notes.append(f"stored agent {name!r} left out: {error}")
            continue
        if any(a.name.casefold() == name.casefold() for a in agents):
            notes.append(f"stored agent {name!r} left out: an agent of that name comes first")
            continue
        taken = [x for x in agent.addresses if any(x in a.addresses for a in agents)]
        if taken:
            notes.append(f"stored agent {name!r} left out: {', '.join(taken)} is another agent's")
            continue
        agents.append(agent)
    return tuple(agents), tuple(notes)


UNCONFIGURED = (
    "agent authentication is not configured: an administrator sets [identity]"
    " trusted_authserv_id (or trust_from_address = true on a closed network)"
)


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    """Who the agents are, which Authentication-Results to trust, and our own addresses."""

    agents: tuple[Agent, ...] = ()
    trusted_authserv_id: str | None = None
    own_addresses: tuple[str, ...] = ()
    trust_from_address: bool = False  # without an authserv-id: trust From alone (closed networks)
    _by_address: dict[str, Agent] = field(init=False, repr=False, compare=False)
    _by_skeleton: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_address: dict[str, Agent] = {}
        for agent in self.agents:
            for address in agent.addresses:
                if by_address.setdefault(address, agent) is not agent:
                    raise ValueError(f"address {address} belongs to two agents")
        own = tuple(normalize_address(a) for a in self.own_addresses)
        if None in own:
            raise ValueError(f"invalid own address in {self.own_addresses}")
        protected = [*by_address, *(a for a in own if a)]
        object.__setattr__(self, "own_addresses", tuple(a for a in own if a))
        object.__setattr__(self, "_by_address", by_address)
        object.__setattr__(self, "_by_skeleton", {skeleton(a): a for a in protected})

    def agent_for(self, address: str) -> Agent | None:
        """The agent owning this normalized address, if any."""
        return self._by_address.get(address)

    def lookalike_of(self, address: str) -> str | None:
        """The agent or own address that this normalized address imitates without being it."""
        imitated = self._by_skeleton.get(skeleton(address))
        return imitated if imitated != address else None


class SenderKind(StrEnum):
    """How an inbound mail's sender is treated."""

    AGENT = "agent"
    CUSTOMER = "customer"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SenderIdentity:
    """The verdict on a sender, with the reason recorded in the event log."""

    kind: SenderKind
    address: str | None
    reason: str
    agent: Agent | None = None
    customer: Customer | None = None
    lookalike_of: str | None = None  # an agent or own address this sender imitates
    # An agent's address, refused only because agent authentication is not configured.
    unauthenticated_agent: Agent | None = None


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One ``method=result`` entry of an Authentication-Results header, with its properties."""

    method: str
    result: str
    properties: tuple[tuple[str, str], ...]

    def prop(self, name: str) -> str | None:
        """The value of ``ptype.property`` (e.g. ``header.d``), if present."""
        return next((value for key, value in self.properties if key == name), None)


@dataclass(frozen=True, slots=True)
class AuthenticationResults:
    """A parsed Authentication-Results header (RFC 8601)."""

    authserv_id: str
    results: tuple[AuthResult, ...]


_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([a-z0-9_-]+)(?:\s*/\s*\d+)?\s*=\s*([a-z]+)(.*)$", re.IGNORECASE | re.S)
_PROPERTY = re.compile(r'([a-z0-9_-]+\.[a-z0-9_-]+)\s*=\s*("[^"]*"|[^\s;]+)', re.IGNORECASE)
_MAX_COMMENT_NESTING = 5

# Letters from other scripts that render like Latin ones (after NFKD and case folding).
_CONFUSABLE = str.maketrans(
    {
        **dict.fromkeys("аɑα", "a"),
        **dict.fromkeys("вьβ", "b"),
        **dict.fromkeys("сϲς", "c"),
        "ԁ": "d",
        **dict.fromkeys("еεҽ", "e"),
        **dict.fromkeys("ɡց", "g"),
        **dict.fromkeys("һнհ", "h"),
        **dict.fromkeys("іıιɩӏ", "i"),
        **dict.fromkeys("јϳȷ", "j"),
        **dict.fromkeys("кκ", "k"),
        "м": "m",
        **dict.fromkeys("пηո", "n"),
        **dict.fromkeys("оοօσ0", "o"),
        **dict.fromkeys("рρ", "p"),
        **dict.fromkeys("ԛզ", "q"),
        "г": "r",
        "ѕ": "s",
        **dict.fromkeys("тτ", "t"),
        **dict.fromkeys("υսμ", "u"),
        "ν": "v",
        **dict.fromkeys("ԝωա", "w"),
        **dict.fromkeys("хχ", "x"),
        **dict.fromkeys("уγʏ", "y"),
        **dict.fromkeys("1|", "l"),
    }
)
_ASCII_LOOKALIKES = (("rn", "m"), ("vv", "w"), ("cl", "d"))


def parse_authentication_results(value: str) -> AuthenticationResults | None:
    """Parse one Authentication-Results value; None when it is malformed."""
    if has_forbidden_chars(value):
        return None
    for _ in range(_MAX_COMMENT_NESTING):
        value, count = _COMMENT.subn(" ", value)
        if not count:
            break
    head, *entries = value.split(";")
    authserv = head.split()
    if not authserv:
        return None
    results = []
    for entry in entries:
        match = _RESULT.match(entry)
        if match:
            props = tuple((k.lower(), v.strip('"')) for k, v in _PROPERTY.findall(match[3]))
            results.append(AuthResult(match[1].lower(), match[2].lower(), props))
    return AuthenticationResults(authserv[0].lower(), tuple(results))


def trusted_authentication(
    headers: Iterable[tuple[str, str]], authserv_id: str
) -> AuthenticationResults | None:
    """The topmost Authentication-Results header stamped by ``authserv_id``; others are ignored."""
    found = stamped_by(headers, authserv_id)
    return found[0] if found else None


def stamped_by(headers: Iterable[tuple[str, str]], authserv_id: str) -> list[AuthenticationResults]:
    """Every Authentication-Results header stamped by ``authserv_id``, topmost first."""
    wanted = authserv_id.lower()
    found = []
    for name, value in headers:
        if name.lower() == "authentication-results":
            parsed = parse_authentication_results(value)
            if parsed is not None and parsed.authserv_id == wanted:
                found.append(parsed)
    return found


def authenticated_for(results: AuthenticationResults, from_domain: str) -> str | None:
    """Why mail from ``from_domain`` counts as authenticated: a DMARC pass for that very
    domain, or a DKIM or SPF pass aligned with it. A DMARC result for another domain, or any
    DMARC result but a pass, never authenticates."""
    dmarc = [r for r in results.results if r.method == "dmarc"]
    if dmarc:
        if dmarc[0].result != "pass":
            return None
        checked = normalize_domain(dmarc[0].prop("header.from") or "")
        if checked == from_domain:
            return f"dmarc=pass header.from={checked}"
        if checked is not None:
            return None  # a pass for another domain (a second From, a forged header)
    for result in results.results:
        if result.result != "pass":
            continue
        if result.method == "dkim":
            signer = result.prop("header.d") or (result.prop("header.i") or "").rpartition("@")[2]
            if _aligned(signer, from_domain):
                return f"dkim=pass aligned ({signer})"
        if result.method == "spf":
            mail_from = (result.prop("smtp.mailfrom") or "").rpartition("@")[2]
            if _aligned(mail_from, from_domain):
                return f"spf=pass aligned ({mail_from})"
    return None


def _aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: equal domains, or one a subdomain of the other (two labels at least)."""
    other = normalize_domain(domain) if domain else None
    if other is None:
        return False
    return (
        other == from_domain
        or from_domain.endswith(f".{other}")
        or (other.endswith(f".{from_domain}"))
    )


@lru_cache(maxsize=8192)  # pure; every mail from the same sender asks again
def skeleton(address: str) -> str:
    """A lookalike-insensitive form of an address: confusable letters folded to Latin."""
    local, _, domain = address.partition("@")
    with contextlib.suppress(UnicodeError):  # keep a domain that is not valid punycode
        domain = domain.encode("ascii").decode("idna")
    text = unicodedata.normalize("NFKD", f"{local}@{domain}").casefold()
    text = "".join(c for c in text if not unicodedata.combining(c)).translate(_CONFUSABLE)
    for lookalike, letter in _ASCII_LOOKALIKES:
        text = text.replace(lookalike, letter)
    return text


def identify_sender(
    message: ParsedMessage,
    policy: IdentityPolicy,
    customer_by_address: Callable[[str], Customer | None],
) -> SenderIdentity:
    """Decide whether the sender is a verified agent, a known customer, or unknown."""
    if len(message.from_) != 1:
        return SenderIdentity(SenderKind.UNKNOWN, None, f"{len(message.from_)} From addresses")
    address = normalize_address(message.from_[0].addr)
    if address is None:
        return SenderIdentity(SenderKind.UNKNOWN, None, "From address is not a valid mailbox")
    agent = policy.agent_for(address)
    notes: list[str] = []
    unauthenticated = None
    if agent is not None:
        verified, verdict = _agent_verdict(message, policy, address)
        if verified:
            return SenderIdentity(
                SenderKind.AGENT, address, f"agent {agent.name}: {verdict}", agent
            )
        notes.append(f"From is agent {agent.name}'s address but {verdict}; handled as non-agent")
        if verdict == UNCONFIGURED:
            unauthenticated = agent
    imitated = policy.lookalike_of(address)
    if imitated is not None:
        notes.append(f"From {address} is confusable with {imitated}")
    customer = customer_by_address(address)
    if customer is not None:
        reason = "; ".join([f"customer {customer.id} by address", *notes])
        return SenderIdentity(
            SenderKind.CUSTOMER, address, reason, None, customer, imitated, unauthenticated
        )
    reason = "; ".join(["address not known", *notes])
    return SenderIdentity(
        SenderKind.UNKNOWN, address, reason, None, None, imitated, unauthenticated
    )


def _agent_verdict(
    message: ParsedMessage, policy: IdentityPolicy, address: str
) -> tuple[bool, str]:
    """Whether mail from an agent address may be trusted, and why (or why not)."""
    ambiguity = _author_ambiguity(message, address)
    if ambiguity is not None:
        return False, ambiguity
    if policy.trusted_authserv_id is None:
        if policy.trust_from_address:
            return True, "trusted by address (trust_from_address, no authserv-id configured)"
        return False, UNCONFIGURED
    stamped = stamped_by(message.headers, policy.trusted_authserv_id)
    if not stamped:
        return False, f"no Authentication-Results from {policy.trusted_authserv_id}"
    if len(stamped) > 1:
        return False, f"{len(stamped)} Authentication-Results from {policy.trusted_authserv_id}"
    results = stamped[0]
    why = authenticated_for(results, address.rpartition("@")[2])
    if why is None:
        seen = ", ".join(f"{r.method}={r.result}" for r in results.results) or "no results"
        return False, f"authentication failed at {results.authserv_id} ({seen})"
    return True, f"authenticated by {results.authserv_id}: {why}"


def _author_ambiguity(message: ParsedMessage, address: str) -> str | None:
    """Why the author of this mail is ambiguous (several From or Sender headers, or a Sender
    that is not the From address), else None."""
    froms = message.header_values("From")
    if len(froms) != 1:
        return f"{len(froms)} From headers"
    senders = message.header_values("Sender")
    if len(senders) > 1:
        return f"{len(senders)} Sender headers"
    if senders:
        _, sender = parseaddr(senders[0])
        if normalize_address(sender) != address:
            return "a Sender header names another address"
    return None
