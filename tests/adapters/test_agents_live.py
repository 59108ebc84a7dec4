"""Issue 15, part 5: an agent added by `mailproc agents add` while `serve` runs can work
tickets by mail at once, without a restart."""

from __future__ import annotations

import signal
import smtplib
from pathlib import Path

from sqlalchemy import select

from adapters.conftest import ConfigWriter
from adapters.support import free_port, port_open, run_cli, start_cli, wait_for
from mailproc.app import App
from mailproc.core.events import EventKind
from mailproc.store.db import transaction
from mailproc.store.models import Event, Inbound, Ticket

SUPPORT = "support@dataflow.com"
AUTH = "Authentication-Results: mx.dataflow.com; dmarc=pass header.from=dataflow.com"


def _mail(sender: str, subject: str, body: str, mid: str, *headers: str) -> bytes:
    head = [f"From: {sender}", f"To: {SUPPORT}", f"Subject: {subject}", f"Message-ID: <{mid}>"]
    return ("\r\n".join([*head, *headers]) + "\r\n\r\n" + body + "\r\n").encode()


def _priority(app: App, number: int) -> str | None:
    with transaction(app.sessions, commit=False) as session:
        return session.scalar(select(Ticket.priority).where(Ticket.number == number))


def _processed(app: App, mid: str) -> bool:
    with transaction(app.sessions, commit=False) as session:
        inbound = session.scalar(select(Inbound).where(Inbound.message_id == mid))
        return inbound is not None and inbound.status != "pending"


def _events(app: App, kind: EventKind) -> list[str]:
    with transaction(app.sessions, commit=False) as session:
        return list(session.scalars(select(Event.reason).where(Event.kind == kind)))


def test_an_agent_added_while_serve_runs_commands_tickets_by_mail(
    app: App, write_config: ConfigWriter, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(
        listener={"listen": f"127.0.0.1:{port}"},
        serve={"process_interval_s": 0.3, "pollers": False},
        processing={"parse_workers": 0},
        identity={"trusted_authserv_id": "mx.dataflow.com"},
    )
    log = tmp_path / "serve.log"
    process = start_cli(["serve"], config, log)
    try:
        wait_for(lambda: port_open(port) or process.poll() is not None, 20, "serve to listen")
        assert process.poll() is None, log.read_text()

        def send(raw: bytes, sender: str) -> None:
            with smtplib.SMTP("127.0.0.1", port) as client:
                client.sendmail(sender, [SUPPORT], raw)

        customer = "ana@globex.example"
        send(_mail(customer, "Sync fails", "Our sync fails.", "c1@globex.example"), customer)
        wait_for(lambda: _priority(app, 10001) is not None, 20, "the customer's ticket")
        before = _priority(app, 10001)
        assert before not in (None, "P1")

        # not an agent yet: the command is answered, never applied
        rita = "rita@dataflow.com"
        early = _mail(rita, "Re: [Ticket #10001]", "#priority P1", "r1@dataflow.com", AUTH)
        send(early, rita)
        wait_for(lambda: _processed(app, "r1@dataflow.com"), 20, "Rita's first mail")
        assert _priority(app, 10001) == before

        added = run_cli(
            ["agents", "add", "Rita Rivera", "--role", "agent", "--address", rita], config
        )
        assert added.returncode == 0, added.stderr
        listed = run_cli(["agents", "list"], config)
        assert "Rita Rivera" in listed.stdout and rita in listed.stdout

        later = _mail(rita, "Re: [Ticket #10001]", "#priority P1", "r2@dataflow.com", AUTH)
        send(later, rita)
        wait_for(
            lambda: _priority(app, 10001) == "P1",
            20,
            "the new agent's #priority to apply",
        )
        assert any("Rita Rivera" in reason for reason in _events(app, EventKind.AGENT_COMMAND))

        # removed while running: her next command is no longer applied
        removed = run_cli(["agents", "remove", "Rita Rivera"], config)
        assert removed.returncode == 0, removed.stderr
        after = _mail(rita, "Re: [Ticket #10001]", "#priority P3", "r3@dataflow.com", AUTH)
        send(after, rita)
        wait_for(lambda: _processed(app, "r3@dataflow.com"), 20, "Rita's mail after removal")
        assert _priority(app, 10001) == "P1"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    assert code == 0, log.read_text()
