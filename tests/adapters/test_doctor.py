"""``mailproc doctor`` against real servers: an aiosmtpd relay, Dovecot, the test database."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result

from adapters.conftest import ConfigWriter
from adapters.support import Dovecot, free_port
from mailproc.cli import cli

AGENT = {"name": "Ana Agent", "roles": ["agent"], "addresses": ["ana@dataflow.com"]}


class Sink:
    """Accepts every mail."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


@pytest.fixture
def relay_url() -> Iterator[str]:
    controller = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{controller.port}"
    finally:
        controller.stop()


def doctor(config: Path) -> Result:
    environment = {name: None for name in os.environ if name.startswith("MAILPROC_")}
    return CliRunner().invoke(
        cli, ["--config", str(config), "doctor"], env=environment, catch_exceptions=False
    )


def lines(result: Result) -> dict[str, str]:
    """Each check's name with its whole line."""
    return {line.split(":")[0].split(maxsplit=1)[1]: line for line in result.stdout.splitlines()}


def healthy(dovecot: Dovecot, user: str, relay_url: str) -> dict[str, dict[str, Any]]:
    mailbox = {
        "name": "support",
        "host": "127.0.0.1",
        "port": dovecot.port,
        "security": "plain",
        "user": user,
        "password": "secret",
    }
    return {
        "relay": {"url": relay_url},
        "imap": {"mailboxes": [mailbox]},
        "listener": {"listen": f"127.0.0.1:{free_port()}"},
        "identity": {"agents": [AGENT]},
    }


def test_everything_ok(
    write_config: ConfigWriter, dovecot: Dovecot, imap_user: str, relay_url: str
) -> None:
    result = doctor(write_config(**healthy(dovecot, imap_user, relay_url)))
    assert result.exit_code == 0, result.output
    found = lines(result)
    assert list(found) == [
        "config",
        "database",
        "clock",
        "relay",
        "imap support",
        "listener",
        "agents",
    ]
    assert all(line.startswith("ok ") for line in found.values()), result.output
    assert "answers EHLO" in found["relay"] and "INBOX" in found["imap support"]


def test_relay_down_is_temporary(
    write_config: ConfigWriter, dovecot: Dovecot, imap_user: str, relay_url: str
) -> None:
    sections = healthy(dovecot, imap_user, relay_url)
    sections["relay"] = {"url": f"smtp://127.0.0.1:{free_port()}", "timeout_s": 2}
    result = doctor(write_config(**sections))
    assert result.exit_code == os.EX_TEMPFAIL
    assert lines(result)["relay"].startswith("error   relay: cannot connect to relay")


@pytest.mark.parametrize(
    ("mailbox", "says"),
    [
        ({"password": "wrong"}, "refused the login of user"),
        ({"folder": "Nowhere"}, "no folder 'Nowhere'"),
    ],
    ids=["wrong-password", "missing-folder"],
)
def test_mailbox_problems_are_config_errors(
    write_config: ConfigWriter,
    dovecot: Dovecot,
    imap_user: str,
    relay_url: str,
    mailbox: dict[str, str],
    says: str,
) -> None:
    sections = healthy(dovecot, imap_user, relay_url)
    sections["imap"]["mailboxes"][0].update(mailbox)
    result = doctor(write_config(**sections))
    assert result.exit_code == os.EX_CONFIG
    line = lines(result)["imap support"]
    assert line.startswith("error ") and says in line, line


def test_busy_listener_warns_and_an_agent_loop_is_a_config_error(
    write_config: ConfigWriter, dovecot: Dovecot, imap_user: str, relay_url: str
) -> None:
    sections = healthy(dovecot, imap_user, relay_url)
    looping = {**AGENT, "addresses": ["support@dataflow.com"]}
    sections["identity"] = {"agents": [looping]}
    with socket.create_server(("127.0.0.1", 0)) as busy:
        sections["listener"] = {"listen": f"127.0.0.1:{busy.getsockname()[1]}"}
        result = doctor(write_config(**sections))
    assert result.exit_code == os.EX_CONFIG
    found = lines(result)
    assert found["listener"].startswith("warning listener:") and "in use" in found["listener"]
    assert found["agents"].startswith("error   agents: support@dataflow.com")


def test_no_database_is_a_config_error_and_creates_nothing(tmp_path: Path, relay_url: str) -> None:
    config = tmp_path / "mailproc.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/none.db"\n')
    result = doctor(config)
    assert result.exit_code == os.EX_CONFIG
    assert lines(result)["database"].startswith("error   database: no database here")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mailproc.toml"]


def test_agents_stored_by_the_cli_count_as_agents(
    write_config: ConfigWriter, relay_url: str
) -> None:
    config = write_config(relay={"url": relay_url})
    assert lines(doctor(config))["agents"].startswith("warning agents: no [[identity.agents]]")
    environment = {name: None for name in os.environ if name.startswith("MAILPROC_")}
    added = CliRunner().invoke(
        cli,
        ["--config", str(config), "agents", "add", "Ana Agent", "--address", "ana@dataflow.com"],
        env=environment,
    )
    assert added.exit_code == 0, added.output
    line = lines(doctor(config))["agents"]
    assert line.startswith("ok ") and "0 configured and 1 stored agent(s)" in line, line
