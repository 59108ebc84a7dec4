"""``mailproc agents``: add, list and remove agents without editing the config file."""

from __future__ import annotations

import dataclasses

import click

from mailproc.cli.context import current_app, echo_json
from mailproc.core.identity import AgentRole
from mailproc.store.db import transaction
from mailproc.workflows import staff

ROLES = [role.value for role in AgentRole]


@click.group()
def agents() -> None:
    """Agents: who may work tickets by mail (stored ones join the configured ones)."""


@agents.command("add")
@click.argument("name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(ROLES),
    help="Repeat for several roles (default: agent).",
)
@click.option(
    "--address", "addresses", multiple=True, required=True, help="Repeat for several addresses."
)
def agents_add(name: str, roles: tuple[str, ...], addresses: tuple[str, ...]) -> None:
    """Store agent NAME with roles and addresses; a running `serve` uses it from its next
    batch. A configured agent ([identity] agents) wins over a stored one."""
    app = current_app()
    with transaction(app.sessions) as session:
        added = staff.add_agent(session, app.staff, name, roles, addresses, app.clock.now())
    click.echo(f"added agent {added.name} ({', '.join(added.roles)}): {', '.join(added.addresses)}")


@agents.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def agents_list(as_json: bool) -> None:
    """The configured and the stored agents; a stored one a configured one overrides is
    marked "left out"."""
    app = current_app()
    with transaction(app.sessions, commit=False) as session:
        entries = staff.list_agents(session, app.staff)
    if as_json:
        echo_json([dataclasses.asdict(entry) for entry in entries])
        return
    if not entries:
        click.echo("no agents (add one with `mailproc agents add NAME --address ADDR`)")
    for entry in entries:
        state = "" if entry.active else "  (left out: a configured agent has its name or address)"
        click.echo(
            f"{entry.name:<24} {','.join(entry.roles):<28} {entry.source:<7} "
            f"{', '.join(entry.addresses)}{state}"
        )


@agents.command("remove")
@click.argument("name")
def agents_remove(name: str) -> None:
    """Remove the stored agent NAME (configured agents are removed from the config file)."""
    app = current_app()
    with transaction(app.sessions) as session:
        staff.remove_agent(session, app.staff, name)
    click.echo(f"removed agent {name}")
