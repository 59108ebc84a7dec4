"""``mailproc agents add/list/remove``: stored agents beside the configured ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mailproc.app import App
from mailproc.cli.errors import EX_DATAERR, EX_USAGE
from mailproc.cli.root import cli
from mailproc.config import load_settings
from mailproc.core.identity import AgentRole, merge_agents

CONFIG = """
[identity]
trust_from_address = true
[[identity.agents]]
name = "Marta Manager"
roles = ["support_manager"]
addresses = ["marta@dataflow.com"]
"""


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "mailproc.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n{CONFIG}')
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def listed(config: Path) -> list[dict[str, object]]:
    result = run(config, "agents", "list", "--json")
    assert result.exit_code == 0, result.output
    entries: list[dict[str, object]] = json.loads(result.output)
    return entries


def test_add_list_remove(config: Path) -> None:
    added = run(
        config, "agents", "add", "Fiona Finance", "--role", "finance_director",
        "--role", "agent", "--address", "Fiona@DataFlow.com",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "added agent Fiona Finance (finance_director, agent): fiona@dataflow.com" in added.output
    assert listed(config) == [
        {
            "name": "Marta Manager",
            "roles": ["support_manager"],
            "addresses": ["marta@dataflow.com"],
            "source": "config",
            "active": True,
        },
        {
            "name": "Fiona Finance",
            "roles": ["finance_director", "agent"],
            "addresses": ["fiona@dataflow.com"],
            "source": "stored",
            "active": True,
        },
    ]
    table = run(config, "agents", "list").output
    assert "Marta Manager" in table and "config" in table and "fiona@dataflow.com" in table
    assert run(config, "agents", "remove", "fiona finance").exit_code == 0
    assert [e["name"] for e in listed(config)] == ["Marta Manager"]


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--role", "boss", "--address", "b@x.example"], EX_USAGE, "'boss' is not one of"),
        (["--address", "not an address"], EX_DATAERR, "is not a valid mail address"),
        (["--role", "agent"], EX_USAGE, "Missing option '--address'"),
        (["--address", "marta@dataflow.com"], EX_DATAERR, "already the address of agent Marta"),
        (["--address", "support@dataflow.com"], EX_DATAERR, "is a support address"),
    ],
)
def test_add_refuses_with_a_clear_line(config: Path, args: list[str], code: int, says: str) -> None:
    result = run(config, "agents", "add", "Bob", *args)
    assert result.exit_code == code, result.output
    assert says in result.output
    assert [e["name"] for e in listed(config)] == ["Marta Manager"]


def test_names_are_unique_and_configured_agents_are_not_removed_here(config: Path) -> None:
    taken = run(config, "agents", "add", "marta manager", "--address", "m2@dataflow.com")
    assert taken.exit_code == EX_DATAERR and "already an agent named" in taken.output
    configured = run(config, "agents", "remove", "Marta Manager")
    assert (
        configured.exit_code == EX_DATAERR and "remove it from the config file" in configured.output
    )
    missing = run(config, "agents", "remove", "Nobody")
    assert missing.exit_code == EX_DATAERR and "no stored agent named 'Nobody'" in missing.output


def test_a_configured_agent_wins_over_a_stored_one(config: Path, tmp_path: Path) -> None:
    assert run(config, "agents", "add", "Zoe", "--address", "zoe@dataflow.com").exit_code == 0
    # later the administrator configures Zoe's address for someone else
    assert run(config, "agents", "add", "Ivy", "--address", "ivy@dataflow.com").exit_code == 0
    zhang = 'name = "Zoe Zhang"\nroles = ["cto"]\naddresses = ["zoe@dataflow.com"]\n'
    ivy = 'name = "Ivy"\nroles = ["devops"]\naddresses = ["ivy.ops@dataflow.com"]\n'
    config.write_text(
        config.read_text() + "[[identity.agents]]\n" + zhang + "[[identity.agents]]\n" + ivy
    )
    assert [
        (e["name"], e["source"], e["active"]) for e in listed(config) if e["name"] == "Ivy"
    ] == [
        ("Ivy", "config", True),
        ("Ivy", "stored", False),
    ]
    zoe = [e for e in listed(config) if e["addresses"] == ["zoe@dataflow.com"]]
    assert [(e["name"], e["source"], e["active"]) for e in zoe] == [
        ("Zoe Zhang", "config", True),
        ("Zoe", "stored", False),
    ]
    app = App(load_settings(config))
    try:
        agent = app.processing_context().identity.agent_for("zoe@dataflow.com")
        assert agent is not None and agent.name == "Zoe Zhang"
        assert [a.name for a in app.staff.agents] == ["Marta Manager", "Zoe Zhang", "Ivy"]
        assert app.staff.identity.agent_for("ivy@dataflow.com") is None
    finally:
        app.close()


def test_merge_keeps_configured_first_and_says_what_it_left_out() -> None:
    configured = merge_agents([], [("Ann", ["agent"], ["ann@x.example"])])[0]
    agents, notes = merge_agents(
        configured,
        [
            ("ann", ["cto"], ["other@x.example"]),
            ("Ben", ["agent"], ["ANN@x.example"]),
            ("Cid", ["nonsense"], ["cid@x.example"]),
            ("Dee", ["support_manager"], ["dee@x.example"]),
        ],
    )
    assert [(a.name, a.roles) for a in agents] == [
        ("Ann", frozenset({AgentRole.AGENT})),
        ("Dee", frozenset({AgentRole.SUPPORT_MANAGER})),
    ]
    assert len(notes) == 3 and "ann@x.example is another agent's" in notes[1]
