"""The deliverer against a real aiosmtpd relay: sent once, retried, failed; SMTP and Maildir."""

from __future__ import annotations

import datetime as dt
import os
import signal
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from adapters.support import MAILPROC, free_port, wait_for
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from conftest import T0
from sqlalchemy import select
from test_outbox import ANA, SUPPORT, add_ticket, queue, rows

from mailproc.app import App
from mailproc.cli import cli
from mailproc.clock import FixedClock, SystemClock
from mailproc.config import Settings
from mailproc.outbound.attempts import claim_due
from mailproc.outbound.deliver import (
    LEASE_TIMEOUTS,
    DeliverySummary,
    deliver_all_due,
    deliver_due,
)
from mailproc.outbound.transports import MaildirTransport, RelayUnavailable
from mailproc.store.db import transaction
from mailproc.store.models import Event, UndeliverableAddress

BOB = "bob@example.com"
CAROL = "carol@example.com"


@dataclass(frozen=True)
class Received:
    """One mail as the relay got it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message_id(self) -> str:
        for line in self.content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                return line.split(b":", 1)[1].strip().strip(b"<>").decode()
        raise AssertionError("no Message-ID")


@dataclass
class RecordingHandler:
    """Accepts and records mail, or answers with the reply a test sets."""

    received: list[Received] = field(default_factory=list)
    data_reply: str | None = None
    rcpt_replies: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 2.0.0 queued"


class Relay:
    """A real SMTP server on 127.0.0.1; built stopped, so a test can have the relay down first."""

    def __init__(self, scheme: str = "smtp", **server_options: Any) -> None:
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.handler = RecordingHandler()
        self._options = server_options
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> Relay:
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, **self._options
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def relay() -> Iterator[Relay]:
    server = Relay().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def down_relay() -> Iterator[Relay]:
    server = Relay()
    try:
        yield server
    finally:
        server.stop()


def make_app(db_url: str, clock: FixedClock, relay_url: str, **relay: Any) -> App:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "relay": {"url": relay_url, "timeout_s": 5, **relay},
            "outbox": {"backoff_initial_s": 30, "backoff_max_s": 3600, "batch_size": 10},
        }
    )
    return App(settings, clock)


@pytest.fixture
def deliverer(db_url: str, clock: FixedClock, relay: Relay) -> Iterator[App]:
    app = make_app(db_url, clock, relay.url)
    try:
        yield app
    finally:
        app.close()


def run(app: App) -> DeliverySummary:
    return deliver_due(app.sessions, app.settings, app.clock)


def events(app: App) -> list[tuple[str, int | None, str]]:
    with transaction(app.sessions) as session:
        found = session.execute(
            select(Event.kind, Event.ticket_id, Event.reason).order_by(Event.id)
        )
        return [(kind, ticket_id, reason) for kind, ticket_id, reason in found]


def test_a_queued_mail_reaches_the_relay_once_with_its_bytes(
    deliverer: App, relay: Relay, clock: FixedClock
) -> None:
    with transaction(deliverer.sessions) as session:
        ticket_id = add_ticket(session)
        queue(session, "ack:10001", ticket_id=ticket_id)
    assert run(deliverer) == DeliverySummary(sent=1)
    assert run(deliverer) == DeliverySummary()
    clock.advance(dt.timedelta(days=3))
    assert run(deliverer) == DeliverySummary()
    [row] = rows(deliverer)
    [mail] = relay.received
    assert (mail.mail_from, mail.rcpt_tos) == (SUPPORT, [ANA])
    assert mail.content == row.raw and mail.message_id == row.message_id
    assert (row.status, row.attempts, row.sent_at, row.last_error) == ("sent", 1, T0, None)
    assert events(deliverer) == [("outbound.sent", ticket_id, "accepted by the relay")]


def test_a_relay_that_is_down_is_retried_with_backoff_until_it_comes_up(
    db_url: str, clock: FixedClock, down_relay: Relay
) -> None:
    app = make_app(db_url, clock, down_relay.url)
    with transaction(app.sessions) as session:
        queue(session, "ack:1")
    attempts = []
    for wait in (0, 30, 60, 120):
        clock.advance(dt.timedelta(seconds=wait))
        assert run(app) == DeliverySummary(retried=1)
        assert run(app) == DeliverySummary()  # not due again before its backoff
        [row] = rows(app)
        attempts.append((row.attempts, row.next_attempt_at - clock.now()))
        assert "cannot connect to relay" in (row.last_error or "")
    assert attempts == [(n, dt.timedelta(seconds=30 * 2 ** (n - 1))) for n in (1, 2, 3, 4)]
    down_relay.start()
    clock.advance(dt.timedelta(seconds=239))
    assert run(app) == DeliverySummary()
    clock.advance(dt.timedelta(seconds=1))
    assert run(app) == DeliverySummary(sent=1)
    clock.advance(dt.timedelta(hours=1))
    assert run(app) == DeliverySummary()
    [row] = rows(app)
    assert [m.message_id for m in down_relay.received] == [row.message_id]
    assert (row.status, row.attempts, row.last_error) == ("sent", 5, None)
    assert [kind for kind, _, _ in events(app)] == ["outbound.retry"] * 4 + ["outbound.sent"]
    app.close()


def test_an_unreachable_relay_stops_the_round_and_leaves_the_rest_in_place(
    db_url: str, clock: FixedClock, down_relay: Relay
) -> None:
    app = make_app(db_url, clock, down_relay.url)
    with transaction(app.sessions) as session:
        for n in range(3):
            queue(session, f"ack:{n}")
    assert run(app) == DeliverySummary(retried=1, skipped=2)
    assert [row.attempts for row in rows(app)] == [1, 0, 0]
    app.close()


def test_a_4xx_reply_is_retried_and_the_mail_sent_once_later(
    deliverer: App, relay: Relay, clock: FixedClock
) -> None:
    with transaction(deliverer.sessions) as session:
        queue(session, "ack:1")
    relay.handler.data_reply = "451 4.3.0 Try again later"
    assert run(deliverer) == DeliverySummary(retried=1)
    [row] = rows(deliverer)
    assert row.status == "pending" and row.last_error == f"451 4.3.0 Try again later ({ANA})"
    relay.handler.data_reply = None
    clock.advance(dt.timedelta(seconds=30))
    assert run(deliverer) == DeliverySummary(sent=1)
    assert len(relay.received) == 1


def test_a_5xx_reply_fails_the_mail_with_the_reason(
    deliverer: App, relay: Relay, clock: FixedClock
) -> None:
    with transaction(deliverer.sessions) as session:
        ticket_id = add_ticket(session)
        queue(session, "ack:1", ticket_id=ticket_id)
    relay.handler.data_reply = "550 5.7.1 Message rejected as spam"
    assert run(deliverer) == DeliverySummary(failed=1)
    relay.handler.data_reply = None
    clock.advance(dt.timedelta(days=1))
    assert run(deliverer) == DeliverySummary()
    [row] = rows(deliverer)
    reason = f"550 5.7.1 Message rejected as spam ({ANA})"
    assert (row.status, row.last_error, row.sent_at) == ("failed", reason, None)
    assert [(r.status, r.reason) for r in row.recipients] == [
        ("failed", "550 5.7.1 Message rejected as spam")
    ]
    assert events(deliverer) == [("outbound.failed", ticket_id, reason)]
    assert relay.received == []


def test_retries_end_at_the_deadline(db_url: str, clock: FixedClock, down_relay: Relay) -> None:
    app = make_app(db_url, clock, down_relay.url)
    with transaction(app.sessions) as session:
        queue(session, "ack:1", deadline=T0 + dt.timedelta(seconds=100))
    plan = []
    while (summary := run(app)) != DeliverySummary(failed=1):
        assert summary == DeliverySummary(retried=1)
        [row] = rows(app)
        plan.append((row.next_attempt_at - T0).total_seconds())
        clock.advance(row.next_attempt_at - clock.now())
    assert plan == [30, 90, 100]  # the last attempt is at the deadline itself
    [row] = rows(app)
    assert row.status == "failed" and row.attempts == 4
    assert (row.last_error or "").startswith(
        "retry deadline passed after 4 attempts: cannot connect"
    )
    app.close()


def test_each_recipient_is_sent_to_once_retried_or_failed_on_its_own(
    deliverer: App, relay: Relay, clock: FixedClock
) -> None:
    with transaction(deliverer.sessions) as session:
        queue(session, "ack:1", (ANA, BOB, CAROL))
    relay.handler.rcpt_replies = {BOB: "450 4.2.1 Mailbox busy", CAROL: "550 5.1.1 No such user"}
    assert run(deliverer) == DeliverySummary(retried=1)
    del relay.handler.rcpt_replies[BOB]
    clock.advance(dt.timedelta(seconds=30))
    assert run(deliverer) == DeliverySummary(sent=1)
    assert [m.rcpt_tos for m in relay.received] == [[ANA], [BOB]]
    assert relay.received[0].content == relay.received[1].content
    [row] = rows(deliverer)
    assert row.status == "sent" and row.last_error == f"550 5.1.1 No such user ({CAROL})"
    assert [(r.address, r.status) for r in row.recipients] == [
        (ANA, "sent"),
        (BOB, "sent"),
        (CAROL, "failed"),
    ]


def test_undeliverable_recipients_are_not_sent_to(deliverer: App, relay: Relay) -> None:
    with transaction(deliverer.sessions) as session:
        for address, permanent in ((BOB, True), (CAROL, False)):
            session.add(
                UndeliverableAddress(
                    address=address,
                    permanent=permanent,
                    reason="permanent failure" if permanent else "temporary failure",
                    first_seen=T0,
                    last_seen=T0,
                )
            )
        queue(session, "ack:1", (ANA, BOB, CAROL))
        queue(session, "ack:2", (BOB,))
    assert run(deliverer) == DeliverySummary(sent=1, failed=1)
    assert [m.rcpt_tos for m in relay.received] == [[ANA, CAROL]]
    first, second = rows(deliverer)
    assert first.status == "sent"
    assert (
        first.last_error == f"undeliverable address, our mail bounced (permanent failure) ({BOB})"
    )
    assert (second.status, second.attempts) == ("failed", 0)
    assert second.last_error == first.last_error


def test_undeliverable_marks_expire_and_a_delivery_clears_them(
    deliverer: App, relay: Relay
) -> None:
    days = deliverer.settings.outbox.undeliverable_days
    assert days == 30
    with transaction(deliverer.sessions) as session:
        for address, seen in ((BOB, T0 - dt.timedelta(days=days + 1)), (CAROL, T0)):
            session.add(
                UndeliverableAddress(
                    address=address,
                    permanent=True,
                    reason="permanent failure",
                    first_seen=seen,
                    last_seen=seen,
                )
            )
        queue(session, "ack:1", (ANA, BOB, CAROL))
    assert run(deliverer) == DeliverySummary(sent=1)
    assert [m.rcpt_tos for m in relay.received] == [[ANA, BOB]]  # Bob's mark has expired
    with transaction(deliverer.sessions, commit=False) as session:
        marked = session.scalars(select(UndeliverableAddress.address)).all()
    assert marked == [CAROL]  # Bob got mail since: no longer marked


def test_a_mail_left_sending_by_a_crash_is_resent_after_its_lease(
    deliverer: App, relay: Relay, clock: FixedClock
) -> None:
    lease = dt.timedelta(seconds=LEASE_TIMEOUTS * deliverer.settings.relay.timeout_s)
    with transaction(deliverer.sessions) as session:
        queue(session, "ack:1")
    with transaction(deliverer.sessions) as session:  # a deliverer claims it, then dies
        assert claim_due(session, clock.now(), lease) != []
    assert run(deliverer) == DeliverySummary()
    clock.advance(lease - dt.timedelta(seconds=1))
    assert run(deliverer) == DeliverySummary()
    clock.advance(dt.timedelta(seconds=1))
    assert run(deliverer) == DeliverySummary(sent=1)
    [row] = rows(deliverer)
    assert [m.message_id for m in relay.received] == [row.message_id]
    assert (row.status, row.attempts) == ("sent", 2)
    kinds = [(kind, reason.split(";")[0]) for kind, _, reason in events(deliverer)]
    assert kinds == [
        ("outbound.retry", "attempt 1 left no result within its lease (interrupted)"),
        ("outbound.sent", "accepted by the relay"),
    ]


def test_the_maildir_transport_writes_one_file_per_mail(
    db_url: str, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(db_url, clock, "maildir:outbox")
    with transaction(app.sessions) as session:
        queue(session, "ack:1")
        queue(session, "ack:2", (ANA, BOB))
    assert run(app) == DeliverySummary(sent=2)
    assert run(app) == DeliverySummary()
    files = sorted((tmp_path / "outbox" / "new").iterdir())
    raws = sorted(row.raw.replace(b"\r\n", b"\n") for row in rows(app))
    assert sorted(path.read_bytes() for path in files) == raws
    assert list((tmp_path / "outbox" / "tmp").iterdir()) == []
    app.close()


def test_a_maildir_file_that_cannot_be_written_is_never_accepted(tmp_path: Path) -> None:
    """Files are written by the transport's writer thread: a failed write makes the flush
    (and any later send) raise, so the batch's mail is retried, not recorded as sent."""
    transport = MaildirTransport(tmp_path / "out")
    try:
        assert transport.send(SUPPORT, ["ana@example.com"], b"Subject: 1\r\n\r\none\r\n") == {}
        transport.flush()
        (tmp_path / "out" / "tmp").rmdir()
        (tmp_path / "out" / "tmp").write_text("not a folder")
        transport.send(SUPPORT, ["ana@example.com"], b"Subject: 2\r\n\r\ntwo\r\n")
        with pytest.raises(RelayUnavailable, match="cannot write to maildir"):
            transport.flush()
        with pytest.raises(RelayUnavailable, match="cannot write to maildir"):
            transport.send(SUPPORT, ["ana@example.com"], b"Subject: 3\r\n\r\nthree\r\n")
    finally:
        transport.close()
    files = list((tmp_path / "out" / "new").iterdir())
    assert [path.read_bytes() for path in files] == [b"Subject: 1\n\none\n"]


def test_two_deliverers_at_once_send_each_mail_once(
    db_url: str, clock: FixedClock, relay: Relay
) -> None:
    apps = [make_app(db_url, clock, relay.url) for _ in range(2)]
    with transaction(apps[0].sessions) as session:
        for n in range(40):
            queue(session, f"ack:{n}")
    totals: list[DeliverySummary] = []
    start = threading.Barrier(len(apps))

    def deliver(app: App) -> None:
        start.wait()
        totals.append(deliver_all_due(app.sessions, app.settings, app.clock))

    threads = [threading.Thread(target=deliver, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = sorted(m.message_id for m in relay.received)
    assert sent == sorted(row.message_id for row in rows(apps[0]))
    assert {row.status for row in rows(apps[0])} == {"sent"}
    assert sum(total.sent for total in totals) == 40 and all(t.sent for t in totals)
    for app in apps:
        app.close()


# --- TLS and authentication ------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("relay-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"mailproc", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535


@pytest.mark.parametrize("password", ["s3cret", "wrong"])
def test_starttls_and_auth_with_a_password_file(
    db_url: str,
    clock: FixedClock,
    certificate: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    password: str,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trust the test certificate
    (tmp_path / "relay.secret").write_text(password + "\n")
    server = Relay(
        tls_context=_server_tls(certificate),
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticate,
    ).start()
    app = make_app(
        db_url,
        clock,
        server.url,
        starttls=True,
        username="mailproc",
        password_file=str(tmp_path / "relay.secret"),
    )
    with transaction(app.sessions) as session:
        queue(session, "ack:1")
    summary = run(app)
    server.stop()
    app.close()
    [row] = rows(app)
    if password == "s3cret":
        assert summary == DeliverySummary(sent=1) and len(server.received) == 1
    else:
        assert summary == DeliverySummary(retried=1) and server.received == []
        assert (row.last_error or "").startswith("cannot log in to relay 127.0.0.1:")
        assert "535" in (row.last_error or "")


@pytest.mark.parametrize("trusted", [True, False])
def test_implicit_tls_verifies_the_relay_certificate(
    db_url: str,
    clock: FixedClock,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    trusted: bool,
) -> None:
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    server = Relay("smtps", ssl_context=_server_tls(certificate)).start()
    app = make_app(db_url, clock, server.url, password="s3cret")
    with transaction(app.sessions) as session:
        queue(session, "ack:1")
    summary = run(app)
    server.stop()
    app.close()
    if trusted:
        assert summary == DeliverySummary(sent=1) and len(server.received) == 1
    else:
        assert summary == DeliverySummary(retried=1) and server.received == []
        assert "CERTIFICATE_VERIFY_FAILED" in (rows(app)[0].last_error or "")


# --- the command -----------------------------------------------------------------------------


def _environment(db_url: str, relay_url: str) -> dict[str, str]:
    return {"MAILPROC_DATABASE_URL": db_url, "MAILPROC_RELAY_URL": relay_url}


def test_deliver_once_sends_what_is_due_and_prints_a_summary(
    db_url: str, relay: Relay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(db_url, FixedClock(SystemClock().now()), relay.url)
    with transaction(app.sessions) as session:
        for n in range(25):  # more than one batch
            queue(session, f"ack:{n}", now=app.clock.now())
    result = CliRunner().invoke(
        cli, ["deliver", "--once"], env=_environment(db_url, relay.url), catch_exceptions=False
    )
    assert (result.exit_code, result.output) == (0, "sent 25, retried 0, failed 0, skipped 0\n")
    assert len(relay.received) == 25
    app.close()


def test_deliver_exits_75_when_the_database_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    down = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    environment = _environment(down, "maildir:outbox")
    result = CliRunner().invoke(cli, ["deliver", "--once"], env=environment)
    assert result.exit_code == 75
    assert "database unreachable" in result.output


def test_deliver_runs_until_sigterm(db_url: str, relay: Relay, tmp_path: Path) -> None:
    app = make_app(db_url, FixedClock(SystemClock().now()), relay.url)
    with transaction(app.sessions) as session:
        queue(session, "ack:1", now=app.clock.now())
    process = subprocess.Popen(
        [MAILPROC, "deliver"],
        cwd=tmp_path,
        env={**os.environ, **_environment(db_url, relay.url)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def received(count: int) -> bool:
        assert process.poll() is None, process.communicate()
        return len(relay.received) == count

    try:
        wait_for(lambda: received(1), 30, "the deliverer to send the mail")
        with transaction(app.sessions) as session:
            queue(session, "ack:2", now=SystemClock().now())
        wait_for(lambda: received(2), 30, "a later round")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        app.close()
    assert process.returncode == 0, stderr
    lines = [line.split(", ") for line in stdout.splitlines()]
    assert lines and all(rest == ["retried 0", "failed 0", "skipped 0"] for _, *rest in lines)
    assert sum(int(sent.removeprefix("sent ")) for sent, *_ in lines) == 2
