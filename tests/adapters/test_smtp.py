"""The SMTP/LMTP listener against real clients: policy, limits, smuggling, durability, TLS."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from adapters.support import (
    ListenerThread,
    RawClient,
    TcpProxy,
    count_rows,
    make_message,
    message_ids,
)
from mailproc.adapters.commitwriter import FrameBuffer, frame
from mailproc.adapters.groupcommit import GroupCommitter
from mailproc.adapters.smtp import ListenerSMTP, RecipientPolicy, hash_password
from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.config_transport import ListenerSettings
from mailproc.errors import StartupError
from mailproc.intake.store import Envelope
from mailproc.store.db import transaction
from mailproc.store.models import Blob, Inbound
from mailproc.supervisor import build_listener

SUPPORT = "support@dataflow.com"


def _settings(db_url: str, **sections: Any) -> Settings:
    return Settings.model_validate({"database": {"url": db_url}, **sections})


def _listener(app: App, **overrides: Any) -> ListenerThread:
    return ListenerThread(
        app, ListenerSettings.model_validate({"listen": "127.0.0.1:0", **overrides})
    )


@pytest.fixture
def running(app: App) -> Iterator[ListenerThread]:
    """The SMTP listener with default settings on a free port."""
    with _listener(app) as listener:
        yield listener


def _client(port: int) -> smtplib.SMTP:
    """An smtplib client that has greeted the server."""
    client = smtplib.SMTP("127.0.0.1", port)
    client.ehlo("client.example")
    return client


def _stored(app: App) -> list[Inbound]:
    with transaction(app.sessions, commit=False) as session:
        rows = list(session.scalars(select(Inbound).order_by(Inbound.id)))
        session.expunge_all()  # keep the loaded values past the rollback
        return rows


def _raw(app: App, inbound: Inbound) -> bytes:
    with transaction(app.sessions, commit=False) as session:
        blob = session.get(Blob, inbound.raw_sha256)
        assert blob is not None
        return blob.data


# ----------------------------------------------------------------------------- policy


def test_recipient_policy_accepts_support_addresses_and_their_subaddresses() -> None:
    policy = RecipientPolicy(["support@dataflow.com", "help@acme.io"], "dataflow.com")
    for address in (
        "support@dataflow.com",
        "Support@DataFlow.COM",
        "support+10001-abcdefghijklmnop@dataflow.com",
        "support+anything@dataflow.com",
        "help@acme.io",
        "help+x@acme.io",
        "help+42-token@dataflow.com",
    ):
        assert policy.accepts(address), address
    for address in (
        "sales@dataflow.com",
        "support@dataflow.com.evil.example",
        "support@evil.example",
        "supportx@dataflow.com",
        "help@dataflowXcom",
        "",
        "support@dataflow.com\r\nRCPT TO:<x@y.z>",
    ):
        assert not policy.accepts(address), address


@pytest.mark.parametrize("local_part_limit", [0, 8])
def test_session_parses_addresses_exactly_as_aiosmtpd_does(local_part_limit: int) -> None:
    loop = asyncio.new_event_loop()
    try:
        stock = SMTP(None, loop=loop)
        ours = ListenerSMTP(None, sessions=set(), loop=loop)  # type: ignore[arg-type]
        stock.local_part_limit = ours.local_part_limit = local_part_limit
        for arg in (
            "",
            "<>",
            "<customer@example.com>",
            "<customer@example.com> SIZE=1234 BODY=8BITMIME",
            "customer@example.com",
            "  <spaced@example.com>",
            '<"quoted local"@example.com>',
            "<@relay.example:user@example.com>",
            "<averyverylonglocalpart@example.com>",
            "<no-domain>",
            "<unclosed@example.com",
            "not an address",
            "<a@b@c>",
            "<ünïcode@exämple.com>",
        ):
            for _ in range(2):  # the second answer comes from the cache
                assert ours._getaddr(arg) == stock._getaddr(arg), arg
    finally:
        loop.close()


def test_mail_for_us_is_stored_before_250_with_its_envelope(
    app: App, running: ListenerThread
) -> None:
    raw = make_message(1)
    with _client(running.port) as client:
        code, banner = client.ehlo("client.example")
        assert code == 250
        assert b"SIZE 26214400" in banner and b"SMTPUTF8" in banner
        client.mail("customer1@example.com")
        client.rcpt("support+10001-abc@dataflow.com")
        code, reply = client.data(raw)
    assert code == 250 and b"stored as" in reply
    (row,) = _stored(app)
    assert row.source == "smtp"
    assert row.envelope_from == "customer1@example.com"
    assert row.envelope_to == ["support+10001-abc@dataflow.com"]
    assert row.source_ref and row.source_ref.startswith("127.0.0.1:")
    assert row.status == "pending"
    assert _raw(app, row) == raw  # exactly as received: no Received header of ours


def test_open_relay_attempt_gets_550_and_nothing_is_stored(
    app: App, running: ListenerThread
) -> None:
    with _client(running.port) as client:
        client.ehlo("client.example")
        client.mail("spammer@example.net")
        code, reply = client.rcpt("victim@example.org")
        assert code == 550 and reply.startswith(b"5.7.1")
        assert client.rcpt("support@dataflow.com.evil.example")[0] == 550
        assert client.docmd("DATA")[0] == 503  # no accepted recipient
    assert count_rows(app) == (0, 0)


def test_bounce_with_null_sender_is_accepted(app: App, running: ListenerThread) -> None:
    with _client(running.port) as client:
        client.sendmail("<>", [SUPPORT], make_message(2))
    (row,) = _stored(app)
    assert row.envelope_from is None


def test_same_message_twice_is_stored_once(app: App, running: ListenerThread) -> None:
    with _client(running.port) as client:
        client.sendmail("a@example.com", [SUPPORT], make_message(3))
        client.mail("a@example.com")
        client.rcpt(SUPPORT)
        code, reply = client.data(make_message(3))
    assert code == 250 and b"duplicate of" in reply
    assert count_rows(app) == (1, 1)


def test_not_mail_is_refused_with_554(app: App, running: ListenerThread) -> None:
    with _client(running.port) as client:
        client.mail("a@example.com")
        client.rcpt(SUPPORT)
        code, reply = client.data(b"just some words, no header at all")
    assert code == 554 and reply.startswith(b"5.6.0")
    assert count_rows(app) == (0, 0)


# ----------------------------------------------------------------------------- limits


def test_size_is_advertised_and_enforced_with_552(db_url: str, clock: FixedClock) -> None:
    app = App(_settings(db_url, intake={"max_message_bytes": 4096}), clock)
    try:
        with _listener(app) as running, _client(running.port) as client:
            client.ehlo("client.example")
            assert client.esmtp_features["size"] == "4096"
            assert client.docmd("MAIL FROM:<a@example.com> SIZE=5000")[0] == 552
            client.rset()
            client.mail("a@example.com")  # no SIZE announced: refused at the end of DATA
            client.rcpt(SUPPORT)
            code, _ = client.data(make_message(4, size=8000))
            assert code == 552
            client.sendmail("a@example.com", [SUPPORT], make_message(5, size=2000))
        assert message_ids(app) == ["m-5@example.com"]
    finally:
        app.close()


def test_recipients_past_the_cap_get_452(app: App) -> None:
    with (
        _listener(app, max_recipients=3) as running,
        _client(running.port) as client,
    ):
        client.ehlo("client.example")
        client.mail("a@example.com")
        for n in range(3):
            assert client.rcpt(f"support+{n}@dataflow.com")[0] == 250
        code, reply = client.rcpt("support+3@dataflow.com")
        assert code == 452 and reply.startswith(b"4.5.3")
        assert client.data(make_message(6))[0] == 250
    (row,) = _stored(app)
    assert len(row.envelope_to) == 3


def test_command_line_too_long_is_refused(running: ListenerThread) -> None:
    client = RawClient(running.port)
    try:
        client.command(b"EHLO client.example")
        assert client.command(b"NOOP " + b"x" * 600)[0].startswith(b"500")
        assert client.command(b"NOOP")[0].startswith(b"250")  # the session goes on
    finally:
        client.close()


def test_text_line_too_long_is_refused(app: App, running: ListenerThread) -> None:
    with _client(running.port) as client:
        client.mail("a@example.com")
        client.rcpt(SUPPORT)
        code, _ = client.data(make_message(7) + b"y" * 2000 + b"\r\n")
    assert code == 500
    assert count_rows(app) == (0, 0)


def test_idle_connection_is_closed_after_the_timeout(app: App) -> None:
    with _listener(app, timeout_s=0.5) as running:
        client = RawClient(running.port)
        client.command(b"EHLO client.example")
        time.sleep(1.0)
        assert client.sock.recv(100) == b""  # the server hung up
        client.close()


def test_slow_data_is_cut_off_by_the_timeout(app: App) -> None:
    with _listener(app, timeout_s=0.8) as running:
        client = RawClient(running.port)
        client.command(b"EHLO client.example")
        client.command(b"MAIL FROM:<a@example.com>")
        client.command(b"RCPT TO:<support@dataflow.com>")
        assert client.command(b"DATA")[0].startswith(b"354")
        with pytest.raises(OSError):  # a byte now and then does not keep DATA alive
            for _ in range(20):
                client.send(b"x")
                time.sleep(0.1)
            client.send(b"\r\n.\r\n")
            client.reply()
        client.close()
    assert count_rows(app) == (0, 0)


# ----------------------------------------------------------------------------- smuggling


@pytest.mark.parametrize(
    "sequence", [b"\n.\n", b"\r.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"], ids=repr
)
def test_smuggling_sequences_never_make_two_messages(
    app: App, running: ListenerThread, sequence: bytes
) -> None:
    client = RawClient(running.port)
    try:
        client.command(b"EHLO client.example")
        assert client.command(b"MAIL FROM:<a@example.com>")[0].startswith(b"250")
        assert client.command(b"RCPT TO:<support@dataflow.com>")[0].startswith(b"250")
        assert client.command(b"DATA")[0].startswith(b"354")
        client.send(
            b"From: a@example.com\r\nSubject: first\r\nMessage-ID: <first@example.com>\r\n\r\n"
            b"hello" + sequence + b"MAIL FROM:<evil@example.com>\r\n"
            b"RCPT TO:<support@dataflow.com>\r\nDATA\r\n"
            b"From: ceo@dataflow.com\r\nSubject: smuggled\r\n\r\nwire money\r\n.\r\n"
        )
        (reply,) = client.reply()
        assert reply.startswith(b"250")
        assert client.command(b"QUIT")[0].startswith(b"221")  # no replies to smuggled commands
    finally:
        client.close()
    (row,) = _stored(app)
    assert b"Subject: smuggled" in _raw(app, row)  # it is body text of the one message


# ----------------------------------------------------------------------------- LMTP


def test_lmtp_answers_once_per_accepted_recipient(app: App) -> None:
    with _listener(app, protocol="lmtp") as running:
        client = RawClient(running.port)
        try:
            assert client.command(b"HELO client.example")[0].startswith(b"500")
            assert client.command(b"LHLO client.example")[-1].startswith(b"250")
            client.command(b"MAIL FROM:<a@example.com>")
            assert client.command(b"RCPT TO:<support@dataflow.com>")[0].startswith(b"250")
            assert client.command(b"RCPT TO:<other@example.org>")[0].startswith(b"550")
            assert client.command(b"RCPT TO:<support+77@dataflow.com>")[0].startswith(b"250")
            assert client.command(b"DATA")[0].startswith(b"354")
            client.send(make_message(8) + b".\r\n")
            first, second = client.reply(), client.reply()
            assert first[0].startswith(b"250 2.0.0 <support@dataflow.com>")
            assert second[0].startswith(b"250 2.0.0 <support+77@dataflow.com>")
            assert client.command(b"NOOP")[0].startswith(b"250")  # in step: no extra reply
        finally:
            client.close()
    (row,) = _stored(app)
    assert row.source == "lmtp"
    assert row.envelope_to == ["support@dataflow.com", "support+77@dataflow.com"]


# ----------------------------------------------------------------------------- durability


def test_concurrent_sessions_share_group_commits(app: App, running: ListenerThread) -> None:
    failures: list[BaseException] = []

    def send(worker: int) -> None:
        try:
            with _client(running.port) as client:
                for n in range(20):
                    client.sendmail("a@example.com", [SUPPORT], make_message(worker * 100 + n))
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(message_ids(app)) == sorted(
        f"m-{w * 100 + n}@example.com" for w in range(16) for n in range(20)
    )
    assert sum(running.group_sizes) == 320
    assert max(running.group_sizes) > 1  # sessions waited on shared commits


def test_database_outage_answers_451_and_stores_nothing_half_way(
    db_url: str, clock: FixedClock
) -> None:
    """SQLite: another writer holds the lock; PostgreSQL: the connection to it is cut."""
    postgres = db_url.startswith("postgresql")
    proxy = None
    url = db_url
    if postgres:
        parsed = make_url(db_url)
        proxy = TcpProxy(parsed.port or 5432)
        proxy.start()
        url = parsed.set(port=proxy.port).render_as_string(hide_password=False)
    app = App(_settings(url, database={"url": url, "busy_timeout_ms": 300}), clock)
    blocker = create_engine(db_url, isolation_level="AUTOCOMMIT")
    try:
        with _listener(app) as running, _client(running.port) as client:
            client.sendmail("a@example.com", [SUPPORT], make_message(10))
            with blocker.connect() as lock:
                if postgres:
                    assert proxy is not None
                    proxy.cut()
                else:
                    lock.exec_driver_sql("BEGIN IMMEDIATE")
                client.mail("a@example.com")
                client.rcpt(SUPPORT)
                code, reply = client.data(make_message(11))
                assert (code, reply[:5]) == (451, b"4.3.0")
                if not postgres:
                    lock.exec_driver_sql("ROLLBACK")
            if proxy is not None:
                proxy.start()
            assert count_rows(app) == (1, 1)  # nothing of message 11
            client.sendmail("a@example.com", [SUPPORT], make_message(11))  # the MTA retries
        assert sorted(message_ids(app)) == ["m-10@example.com", "m-11@example.com"]
        assert count_rows(app) == (2, 2)
    finally:
        blocker.dispose()
        app.close()
        if proxy is not None:
            proxy.cut()


def test_unreachable_database_answers_451(clock: FixedClock, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing/dir/mailproc.db"
    app = App(_settings(url), clock)
    try:
        with _listener(app) as running, _client(running.port) as client:
            client.mail("a@example.com")
            client.rcpt(SUPPORT)
            assert client.data(make_message(12))[0] == 451
    finally:
        app.close()


def test_the_listener_opens_once_its_commit_writer_is_connected(app: App) -> None:
    """The first senders do not wait for the writer's start (1-2.5 s on a busy machine)."""

    async def scenario() -> tuple[bool, bool]:
        committer = GroupCommitter(app.settings.database, app.clock)
        await committer.start()
        started = committer.ready
        task = asyncio.create_task(committer.run())
        await committer.store(make_message(1), Envelope("smtp"))
        committer.close()
        await task
        return started, committer.ready

    assert asyncio.run(scenario()) == (True, False)
    assert message_ids(app) == ["m-1@example.com"]


def test_poison_message_in_a_group_fails_alone(app: App) -> None:
    """A message the database refuses is retried alone; the rest of its group is stored."""

    async def scenario() -> list[object]:
        committer = GroupCommitter(app.settings.database, app.clock)
        await committer.start()
        task = asyncio.create_task(committer.run())
        good = [committer.store(make_message(n), Envelope("smtp")) for n in range(3)]
        bad = committer.store(make_message(99), Envelope("smtp", source_ref="\udc80"))
        results = await asyncio.gather(*good, bad, return_exceptions=True)
        committer.close()
        await task
        return results

    *good, bad = asyncio.run(scenario())
    assert isinstance(bad, Exception)
    assert not any(isinstance(result, Exception) for result in good)
    assert sorted(message_ids(app)) == [f"m-{n}@example.com" for n in range(3)]


def test_commit_writer_that_dies_is_restarted(app: App, running: ListenerThread) -> None:
    """Mail meanwhile gets 451 (never a 250 for mail not stored); a new writer takes over."""
    with _client(running.port) as client:
        client.sendmail("a@example.com", [SUPPORT], make_message(20))
        pid = running.listener.committer.writer_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        codes: list[int] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and codes[-1:] != [250]:
            client.mail("a@example.com")
            client.rcpt(SUPPORT)
            codes.append(client.data(make_message(21 + len(codes)))[0])
            time.sleep(0.02)
        assert codes[-1] == 250 and set(codes) <= {250, 451}
        assert running.listener.committer.writer_pid not in (None, pid)
    stored_last = f"m-{20 + len(codes)}@example.com"
    assert message_ids(app) == ["m-20@example.com", stored_last]


def test_frames_split_anywhere_are_read_whole() -> None:
    values = [("config", 1), (2, b"x" * 70_000), (3, None)]
    stream = b"".join(frame(value) for value in values)
    for cut in (1, 3, 4, 5, 1000, len(stream) - 1):
        buffer = FrameBuffer()
        assert buffer.feed(stream[:cut]) + buffer.feed(stream[cut:]) == values


# ----------------------------------------------------------------------------- TLS and AUTH


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_starttls_and_auth(app: App, certificate: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = certificate
    users = tmp_path / "users"
    users.write_text(f"# relay accounts\nrelay:{hash_password('s3cret')}\n")
    client_context = ssl.create_default_context(cafile=str(cert))
    client_context.check_hostname = False
    with (
        _listener(
            app,
            tls_cert=str(cert),
            tls_key=str(key),
            require_starttls=True,
            auth_file=str(users),
            auth_required=True,
        ) as running,
        _client(running.port) as client,
    ):
        client.ehlo("client.example")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        assert client.docmd("MAIL FROM:<a@example.com>")[0] == 530  # TLS first
        client.starttls(context=client_context)
        client.ehlo("client.example")
        assert client.has_extn("auth")
        assert client.docmd("MAIL FROM:<a@example.com>")[0] == 530  # AUTH first
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("relay", "wrong")
        client.login("relay", "s3cret")
        client.sendmail("a@example.com", [SUPPORT], make_message(13))
    assert message_ids(app) == ["m-13@example.com"]


def test_bad_certificate_is_a_startup_error(app: App, tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    settings = ListenerSettings.model_validate(
        {"tls_cert": str(tmp_path / "cert.pem"), "tls_key": str(tmp_path / "cert.pem")}
    )
    with pytest.raises(StartupError) as raised:
        build_listener(app, settings, None)
    assert raised.value.exit_code == os.EX_CONFIG
    assert "cannot load TLS certificate" in str(raised.value)


def test_a_stalled_database_answers_451_within_the_busy_timeout(
    db_url: str, clock: FixedClock
) -> None:
    """The database is held locked by another connection and the writer's own open connection
    stalls (its process stopped mid-wait): the client gets 451 at the busy timeout (and a
    short grace), not at the listener's 300 s timeout; once the stall ends, the MTA's retry
    is stored once."""
    if not db_url.startswith("sqlite"):
        pytest.skip("the lock is taken with SQLite's BEGIN IMMEDIATE")
    app = App(_settings(db_url, database={"url": db_url, "busy_timeout_ms": 1000}), clock)
    blocker = create_engine(db_url, isolation_level="AUTOCOMMIT")
    try:
        with _listener(app) as running, _client(running.port) as client:
            client.sendmail("a@example.com", [SUPPORT], make_message(30))
            pid = running.listener.committer.writer_pid
            assert pid is not None
            with blocker.connect() as lock:
                lock.exec_driver_sql("BEGIN IMMEDIATE")
                os.kill(pid, signal.SIGSTOP)
                try:
                    client.sock.settimeout(30)  # type: ignore[union-attr]
                    client.mail("a@example.com")
                    client.rcpt(SUPPORT)
                    started = time.monotonic()
                    code, reply = client.data(make_message(31))
                    waited = time.monotonic() - started
                finally:
                    os.kill(pid, signal.SIGCONT)
                    lock.exec_driver_sql("ROLLBACK")
            assert (code, reply[:5]) == (451, b"4.3.0")
            assert waited < 1.0 + 2.0 + 1.5  # busy timeout, grace, room for a loaded machine
            client.sendmail("a@example.com", [SUPPORT], make_message(31))  # the MTA retries
        assert sorted(message_ids(app)) == ["m-30@example.com", "m-31@example.com"]
    finally:
        blocker.dispose()
        app.close()
