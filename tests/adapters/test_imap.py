"""The IMAP poller against a real Dovecot: store then move, crashes, UIDVALIDITY, IDLE, leases."""

from __future__ import annotations

import datetime as dt
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.conftest import ConfigWriter
from adapters.support import (
    Dovecot,
    TcpProxy,
    count_rows,
    dovecot_server,
    make_message,
    message_ids,
    run_cli,
    start_cli,
    wait_for,
)
from mailproc.adapters import imap, imap_commands, lease
from mailproc.adapters.imap import STORED_KEYWORD, MailboxPoller
from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config_transport import ImapMailboxSettings, ImapSettings
from mailproc.store.db import transaction
from mailproc.store.models import ImapKey, Inbound, Lease


def _mailbox(dovecot: Dovecot, user: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": user,
        "host": "127.0.0.1",
        "port": dovecot.port,
        "security": "plain",
        "user": user,
        "password": "secret",
        **overrides,
    }


def _poller(
    app: App, dovecot: Dovecot, user: str, holder: str = "test-holder", **settings: Any
) -> MailboxPoller:
    mailbox = ImapMailboxSettings.model_validate(
        _mailbox(dovecot, user, **settings.pop("mailbox", {}))
    )
    imap = ImapSettings.model_validate({"mailboxes": [mailbox.model_dump()], **settings})
    return MailboxPoller(mailbox, imap, app.sessions, app.clock, holder=holder)


LEASE = dt.timedelta(seconds=30)


def _holds_lease(app: App, poller: MailboxPoller) -> bool:
    with transaction(app.sessions, commit=False) as session:
        return session.get(Lease, poller.lease_name) is not None


def _key_count(app: App) -> int:
    with transaction(app.sessions, commit=False) as session:
        return int(session.scalar(select(func.count()).select_from(ImapKey)) or 0)


def test_poll_stores_every_message_then_moves_it_unseen(
    app: App, dovecot: Dovecot, imap_user: str
) -> None:
    dovecot.deliver(imap_user, [make_message(n) for n in range(5)])
    poller = _poller(app, dovecot, imap_user)
    result = poller.poll_once()
    assert result is not None and (result.stored, result.duplicates, result.resumed) == (5, 0, 0)
    assert sorted(message_ids(app)) == [f"m-{n}@example.com" for n in range(5)]
    assert dovecot.folder_uids(imap_user, "INBOX") == []
    assert len(dovecot.folder_uids(imap_user, "Processed")) == 5
    assert dovecot.seen_count(imap_user, "Processed") == 0  # fetched with BODY.PEEK
    with transaction(app.sessions, commit=False) as session:
        refs = sorted(session.scalars(select(Inbound.source_ref).where(Inbound.source == "imap")))
    uidvalidity = refs[0].split(":")[1]
    assert refs == sorted(f"{imap_user}:{uidvalidity}:{uid}" for uid in range(1, 6))
    again = poller.poll_once()
    assert again is not None and again.total == 0
    assert _key_count(app) == 5


def test_large_pass_moves_over_a_second_connection_while_fetching(
    app: App, dovecot: Dovecot, imap_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imap, "_MOVE_GROUP", 4)  # a folder "larger" than a move group
    dovecot.deliver(imap_user, [make_message(n) for n in range(11)])
    poller = _poller(app, dovecot, imap_user, fetch_batch=2)
    result = poller.poll_once()
    assert result is not None and (result.stored, result.total) == (11, 11)
    assert sorted(message_ids(app)) == sorted(f"m-{n}@example.com" for n in range(11))
    assert dovecot.folder_uids(imap_user, "INBOX") == []
    assert len(dovecot.folder_uids(imap_user, "Processed")) == 11
    assert dovecot.seen_count(imap_user, "Processed") == 0
    assert _key_count(app) == 11


def test_batches_are_bounded_by_count_and_by_bytes() -> None:
    sizes = {1: 400, 2: 400, 3: 400, 4: 2000, 5: 100, 6: 100, 7: 100}
    uids = list(sizes)
    assert imap_commands.fetch_batches(uids, sizes, 10, 1000) == [[1, 2], [3], [4], [5, 6, 7]]
    assert imap_commands.fetch_batches(uids, sizes, 2, 10_000) == [[1, 2], [3, 4], [5, 6], [7]]
    # sizes unknown
    assert imap_commands.fetch_batches(uids, {}, 3, 1) == [
        [1, 2, 3],
        [4, 5, 6],
        [7],
    ]  # sizes unknown
    assert imap_commands.fetch_batches([], sizes, 3, 1000) == []


def test_big_messages_are_fetched_in_batches_that_fit_the_byte_cap(
    app: App, dovecot: Dovecot, imap_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five 600 kB messages under a 1 MiB cap: one message per transaction, all stored."""
    dovecot.deliver(imap_user, [make_message(n, size=600_000) for n in range(5)])
    batches: list[int] = []
    commit = MailboxPoller._commit

    def counting_commit(self: MailboxPoller, *args: Any) -> list[int]:
        batches.append(len(args[1]))
        return commit(self, *args)

    monkeypatch.setattr(MailboxPoller, "_commit", counting_commit)
    poller = _poller(app, dovecot, imap_user, fetch_batch_bytes=1024 * 1024)
    result = poller.poll_once()
    assert result is not None and result.stored == 5
    assert batches == [1, 1, 1, 1, 1]
    assert sorted(message_ids(app)) == [f"m-{n}@example.com" for n in range(5)]
    assert dovecot.folder_uids(imap_user, "INBOX") == []


class _Crash(BaseException):
    """Stands for the process dying at that instant."""


class _DiesBeforeMoving(MailboxPoller):
    def _take_out(self, box: Any, uids: list[int]) -> None:
        raise _Crash


def test_crash_between_commit_and_move_loses_and_duplicates_nothing(
    app: App, dovecot: Dovecot, imap_user: str
) -> None:
    dovecot.deliver(imap_user, [make_message(n) for n in range(4)])
    first = _poller(app, dovecot, imap_user)
    dying = _DiesBeforeMoving(first.mailbox, first.settings, app.sessions, app.clock, holder="dies")
    with pytest.raises(_Crash):
        dying.poll_once()
    assert count_rows(app) == (4, 4)  # committed ...
    assert len(dovecot.folder_uids(imap_user, "INBOX")) == 4  # ... but not moved
    with transaction(app.sessions) as session:  # the dead process's lease runs out
        lease.release(session, dying.lease_name, "dies")
    result = first.poll_once()
    assert result is not None and (result.stored, result.duplicates, result.resumed) == (0, 0, 4)
    assert count_rows(app) == (4, 4)
    assert dovecot.folder_uids(imap_user, "INBOX") == []
    assert len(dovecot.folder_uids(imap_user, "Processed")) == 4


def test_uidvalidity_change_rescans_and_recognizes_stored_mail(
    app: App, dovecot: Dovecot, imap_user: str
) -> None:
    messages = [make_message(n) for n in range(3)]
    dovecot.deliver(imap_user, messages, folder="Support")
    poller = _poller(app, dovecot, imap_user, mailbox={"folder": "Support"})
    dying = _DiesBeforeMoving(
        poller.mailbox, poller.settings, app.sessions, app.clock, holder="test-holder"
    )
    with pytest.raises(_Crash):
        dying.poll_once()
    with dovecot.connect(imap_user) as box:  # the folder is rebuilt: new UIDVALIDITY
        old = box.folder.status("Support", ["UIDVALIDITY"])["UIDVALIDITY"]
        box.folder.delete("Support")
        box.folder.create("Support")
        for raw in [*messages, make_message(3)]:
            box.append(raw, "Support")
        assert box.folder.status("Support", ["UIDVALIDITY"])["UIDVALIDITY"] != old
    with transaction(app.sessions) as session:
        lease.release(session, poller.lease_name, "test-holder")
    result = poller.poll_once()
    assert result is not None and (result.stored, result.duplicates, result.resumed) == (1, 3, 0)
    assert sorted(message_ids(app)) == [f"m-{n}@example.com" for n in range(4)]
    assert dovecot.folder_uids(imap_user, "Support") == []


def test_flag_mode_leaves_mail_in_place_flagged_and_unseen(
    app: App, dovecot: Dovecot, imap_user: str
) -> None:
    dovecot.deliver(imap_user, [make_message(n) for n in range(3)])
    poller = _poller(app, dovecot, imap_user, mailbox={"processed_folder": ""})
    result = poller.poll_once()
    assert result is not None and result.stored == 3
    with dovecot.connect(imap_user) as box:
        box.folder.set("INBOX")
        assert len(box.uids(f"KEYWORD {STORED_KEYWORD}", charset=None)) == 3
        assert box.uids("SEEN") == []
    dovecot.deliver(imap_user, [make_message(3)])
    result = poller.poll_once()
    assert result is not None and (result.stored, result.total) == (1, 1)
    assert count_rows(app) == (4, 4)


def test_one_poller_per_mailbox_and_a_stale_one_cannot_commit(
    app: App, clock: FixedClock, dovecot: Dovecot, imap_user: str
) -> None:
    dovecot.deliver(imap_user, [make_message(n) for n in range(2)])
    first = _poller(app, dovecot, imap_user, holder="first", lease_ttl_s=30)
    second = _poller(app, dovecot, imap_user, holder="second", lease_ttl_s=30)
    with transaction(app.sessions) as session:
        assert lease.acquire(session, first.lease_name, "first", clock.now(), LEASE) == "first"
    assert second.poll_once() is None  # stands by while "first" holds the mailbox
    clock.advance(dt.timedelta(seconds=31))  # "first" stalls past its lease ...
    with transaction(app.sessions) as session:
        assert lease.acquire(session, first.lease_name, "second", clock.now(), LEASE) == "second"
    box = first.connect()  # ... and wakes up in the middle of its loop
    try:
        with pytest.raises(lease.LeaseLost):
            first.drain(box)
    finally:
        box.logout()
    assert count_rows(app) == (0, 0)  # the stale poller committed nothing
    assert len(dovecot.folder_uids(imap_user, "INBOX")) == 2  # nor moved anything
    with transaction(app.sessions) as session:
        lease.release(session, first.lease_name, "second")
    result = second.poll_once()
    assert result is not None and result.stored == 2


@pytest.mark.slow
def test_idle_push_survives_a_dovecot_restart(app: App) -> None:
    with dovecot_server() as server:
        user = server.new_user()
        poller = _poller(app, server, user, idle=True, backoff_max_s=1, lease_ttl_s=6)
        stop = threading.Event()
        thread = threading.Thread(target=poller.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_for(lambda: _holds_lease(app, poller), 10, "the poller to start")
            with server.connect(user) as box:
                box.append(make_message(1), "INBOX")
            wait_for(lambda: count_rows(app)[0] == 1, 10, "the pushed message")
            server.stop()
            server.start()
            with server.connect(user) as box:
                box.append(make_message(2), "INBOX")
            wait_for(lambda: count_rows(app)[0] == 2, 20, "the poller to reconnect")
            wait_for(lambda: server.folder_uids(user, "INBOX") == [], 10, "the move")
        finally:
            stop.set()
            thread.join(10)
        assert not thread.is_alive()
        assert sorted(message_ids(app)) == ["m-1@example.com", "m-2@example.com"]


@pytest.mark.slow
def test_poller_killed_mid_run_loses_and_duplicates_nothing(
    app: App, dovecot: Dovecot, imap_user: str, write_config: ConfigWriter, tmp_path: Path
) -> None:
    total, size = 3000, 3000
    dovecot.deliver(imap_user, [make_message(n, size=size) for n in range(total)])
    # The poller reaches Dovecot through a proxy that passes about half the mail and then
    # stalls, so the run cannot finish before the kill however fast the machine is.
    proxy = TcpProxy(dovecot.port, downstream_bytes=total * size // 2)
    proxy.start()

    def imap_through(port: int) -> Path:
        mailbox = _mailbox(dovecot, imap_user, port=port)
        return write_config(imap={"fetch_batch": 10, "lease_ttl_s": 3, "mailboxes": [mailbox]})

    config = imap_through(proxy.port)
    process = start_cli(["poll"], config, tmp_path / "poll.log")
    try:
        wait_for(lambda: count_rows(app)[0] >= 100, 30, "the poller to store some mail")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        proxy.cut()
    stored_at_kill = count_rows(app)[0]
    assert 0 < stored_at_kill < total, (tmp_path / "poll.log").read_text()
    config = imap_through(dovecot.port)
    for _ in range(20):  # until the dead process's lease has run out
        completed = run_cli(["poll", "--once"], config, check=True)
        if "skipped" not in completed.stdout:
            break
        time.sleep(0.5)
    assert "stored" in completed.stdout, completed.stdout
    ids = message_ids(app)
    assert len(ids) == len(set(ids)) == total
    assert dovecot.folder_uids(imap_user, "INBOX") == []
    assert len(dovecot.folder_uids(imap_user, "Processed")) == total


JUNK = [b"\x00\x01\x02\x03binary\x00junk" * 40, b"no header here, just text\r\n"]


def test_mail_the_other_doors_refuse_is_moved_to_the_rejected_folder(
    app: App, dovecot: Dovecot, imap_user: str
) -> None:
    dovecot.deliver(imap_user, [make_message(0), *JUNK, make_message(1)])
    result = _poller(app, dovecot, imap_user).poll_once()
    assert result is not None and (result.stored, result.rejected) == (2, 2)
    assert sorted(message_ids(app)) == ["m-0@example.com", "m-1@example.com"]
    assert count_rows(app)[0] == 2  # nothing else stored: nothing to open a ticket
    assert dovecot.folder_uids(imap_user, "INBOX") == []
    assert len(dovecot.folder_uids(imap_user, "Processed")) == 2
    assert len(dovecot.folder_uids(imap_user, "Rejected")) == 2  # kept, never deleted
    again = _poller(app, dovecot, imap_user).poll_once()
    assert again is not None and again.total == 0


def test_without_a_rejected_folder_refused_mail_is_flagged_in_place(
    app: App, dovecot: Dovecot, imap_user: str
) -> None:
    dovecot.deliver(imap_user, [*JUNK, make_message(2)])
    mailbox = {"rejected_folder": ""}
    result = _poller(app, dovecot, imap_user, mailbox=mailbox).poll_once()
    assert result is not None and (result.stored, result.rejected) == (1, 2)
    assert len(dovecot.folder_uids(imap_user, "INBOX")) == 2
    with dovecot.connect(imap_user) as box:
        box.folder.set("INBOX")
        assert len(box.uids(f"KEYWORD {imap.REJECTED_KEYWORD}")) == 2
    again = _poller(app, dovecot, imap_user, mailbox=mailbox).poll_once()
    assert again is not None and again.total == 0
