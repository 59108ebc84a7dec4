"""The IMAP poller: fetch without \\Seen, commit each message, then move or flag it; IDLE for push.

Each message is keyed by (mailbox, UIDVALIDITY, UID) in the same transaction that stores it.
A crash between that commit and the move finds the key on the next pass and only moves the
message; after a UIDVALIDITY change every message is fetched again and ``store_batch``
recognizes the ones already stored by their bytes. One process at a time polls a mailbox: it
holds a lease in the database and renews it inside every storing transaction, so a process that
lost its lease can never commit (nor move) anything.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import MailboxFlagError
from imap_tools.utils import check_command_status
from sqlalchemy import insert
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session, sessionmaker

from mailproc.adapters import lease
from mailproc.adapters.imap_commands import (
    NETWORK_ERRORS,
    announced,
    close_quietly,
    fetch_batches,
    fetch_raw,
    fetch_sizes,
    new_mail,
    readable,
    uid_set,
    uidvalidity_of,
)
from mailproc.clock import Clock
from mailproc.config_transport import ImapMailboxSettings, ImapSettings
from mailproc.core.rawmail import not_mail_reason
from mailproc.errors import TransientError
from mailproc.intake.store import Envelope, store_batch
from mailproc.store.db import transaction
from mailproc.store.models import ImapKey

log = logging.getLogger(__name__)


STORED_KEYWORD = "$MailprocStored"
REJECTED_KEYWORD = "$MailprocRejected"  # not mail, left in place (no rejected folder)
_POLL_STEP_S = 1.0  # how quickly a waiting poller notices shutdown
_MOVE_GROUP = 1000  # committed messages moved per MOVE command (at most; all at the end)


@dataclass
class DrainResult:
    """What one pass over a mailbox folder did."""

    stored: int = 0
    duplicates: int = 0
    resumed: int = 0  # committed by an earlier pass that died before moving them
    rejected: int = 0  # not mail (the rule SMTP answers 554 to): set aside, never stored

    @property
    def total(self) -> int:
        """Messages taken out of the folder."""
        return self.stored + self.duplicates + self.resumed + self.rejected


class MailboxPoller:
    """Polls one configured mailbox; ``run`` in a thread, or ``poll_once`` from the CLI."""

    def __init__(
        self,
        mailbox: ImapMailboxSettings,
        settings: ImapSettings,
        factory: sessionmaker[Session],
        clock: Clock,
        *,
        holder: str,
        on_stored: Callable[[int], None] | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.settings = settings
        self._factory = factory
        self._clock = clock
        self._holder = holder
        self._on_stored = on_stored
        self._ttl = dt.timedelta(seconds=settings.lease_ttl_s)
        self._uidvalidity: int | None = None
        # PostgreSQL commits two batches at once (each on its own connection) while the next
        # is fetched; SQLite has one writer at a time anyway.
        bind = factory.kw.get("bind")
        self._parallel_commits = 2 if bind is not None and bind.dialect.name == "postgresql" else 1
        self._counting = threading.Lock()  # DrainResult is counted from the commit threads

    @property
    def lease_name(self) -> str:
        """The lease that makes this mailbox's poller unique across processes."""
        return f"imap:{self.mailbox.name}"

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set: take the lease, drain, wait (IDLE), reconnect on failure."""
        backoff = 1.0
        other_holder = None
        while not stop.is_set():
            try:
                holder = self._acquire()
                if holder != self._holder:
                    if holder != other_holder:
                        log.info("%s: polled by %s; standing by", self.mailbox.name, holder)
                        other_holder = holder
                    stop.wait(self.settings.lease_ttl_s / 2)
                    continue
                other_holder = None
                box = self.connect()
                try:
                    while not stop.is_set():
                        self._report(self.drain(box, stop))
                        backoff = 1.0
                        self._wait(box, stop)
                finally:
                    close_quietly(box)
            except lease.LeaseLost as error:
                log.warning("%s: %s", self.mailbox.name, error)
            except Exception as error:
                if isinstance(error, (*NETWORK_ERRORS, TransientError)):
                    log.warning("%s: %s; retrying in %.0fs", self.mailbox.name, error, backoff)
                else:
                    log.exception(
                        "%s: unexpected error; retrying in %.0fs", self.mailbox.name, backoff
                    )
                stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max_s)
        self._release()

    def poll_once(self) -> DrainResult | None:
        """One pass if no other process holds this mailbox (None when one does)."""
        if self._acquire() != self._holder:
            return None
        try:
            box = self.connect()
            try:
                result = self.drain(box)
            finally:
                close_quietly(box)
        finally:
            self._release()
        self._report(result)
        return result

    def connect(self) -> BaseMailBox:
        """Log in, learn the server's capabilities, make sure the processed folder exists."""
        m = self.mailbox
        timeout = self.settings.timeout_s
        box: BaseMailBox
        if m.security == "tls":
            box = MailBox(
                m.host, m.effective_port, timeout, ssl_context=ssl.create_default_context()
            )
        elif m.security == "starttls":
            box = MailBoxStartTls(
                m.host, m.effective_port, timeout, ssl_context=ssl.create_default_context()
            )
        else:
            box = MailBoxUnencrypted(m.host, m.effective_port, timeout)
        try:
            password = m.password or Path(m.password_file).read_text("utf-8").strip()
            box.login(m.user, password, initial_folder=None)
            # imaplib keeps the capabilities announced before login; MOVE and IDLE come after.
            _, data = box.client.capability()
            box.client.capabilities = tuple(data[-1].decode("ascii").upper().split())
            for folder in (m.processed_folder, m.rejected_folder):
                if folder and not box.folder.exists(folder):
                    box.folder.create(folder)
        except BaseException:
            close_quietly(box)
            raise
        return box

    def drain(self, box: BaseMailBox, stop: threading.Event | None = None) -> DrainResult:
        """Store every message of the folder batch by batch; move or flag each committed batch.

        While one batch is being committed (in a thread) the next one is fetched; nothing is
        moved before its commit. A folder of more than ``_MOVE_GROUP`` messages is taken out
        over a second connection, so that the server moves one part while we fetch the next.
        When ``stop`` is set the pass ends after the batches in progress.
        """
        box.folder.set(self.mailbox.folder)
        uidvalidity = uidvalidity_of(box)
        if self._uidvalidity is not None and uidvalidity != self._uidvalidity:
            log.warning(
                "%s: UIDVALIDITY changed from %d to %d; rescanning (stored mail is recognized)",
                self.mailbox.name,
                self._uidvalidity,
                uidvalidity,
            )
        self._uidvalidity = uidvalidity
        left = [
            keyword
            for keyword, folder in (
                (STORED_KEYWORD, self.mailbox.processed_folder),
                (REJECTED_KEYWORD, self.mailbox.rejected_folder),
            )
            if not folder
        ]
        criteria = " ".join(f"UNKEYWORD {keyword}" for keyword in left) or "ALL"
        uids = [int(uid) for uid in box.uids(criteria, charset=None)]
        result = DrainResult()
        if not uids:
            return result
        known = self._known(uidvalidity, uids)
        batches = fetch_batches(
            uids, fetch_sizes(box, uids), self.settings.fetch_batch, self.settings.fetch_batch_bytes
        )
        mover = self._second_connection(uidvalidity) if len(uids) > _MOVE_GROUP else box
        committed: list[int] = []  # moved in large groups: a MOVE costs the server per command
        refused: list[int] = []  # not mail: set aside at the end of the pass
        prefix = f"imap-{self.mailbox.name}"
        parallel = self._parallel_commits
        try:
            with (
                ThreadPoolExecutor(parallel, thread_name_prefix=prefix) as database,
                ThreadPoolExecutor(1, thread_name_prefix=f"{prefix}-move") as moving,
            ):
                committing: deque[Future[list[int]]] = deque()
                moves: list[Future[None]] = []
                for chunk in batches:
                    if stop is not None and stop.is_set():
                        break
                    fetched = fetch_raw(box, [uid for uid in chunk if uid not in known])
                    refused += self._refuse(fetched, result)
                    resumed = [uid for uid in chunk if uid in known]
                    if len(committing) >= parallel:
                        committed += committing.popleft().result()
                    committing.append(
                        database.submit(self._commit, uidvalidity, fetched, resumed, result)
                    )
                    if len(committed) >= _MOVE_GROUP:
                        moves.append(moving.submit(self._take_out, mover, committed))
                        committed = []
                while committing:
                    committed += committing.popleft().result()
                moves.append(moving.submit(self._take_out, mover, committed))
                moves.append(moving.submit(self._set_aside, mover, refused))
                for move in moves:
                    move.result()
        finally:
            if mover is not box:
                close_quietly(mover)
        return result

    def _second_connection(self, uidvalidity: int) -> BaseMailBox:
        """Another connection on the folder (for moves), checked to see the same UIDs."""
        box = self.connect()
        try:
            box.folder.set(self.mailbox.folder)
            if uidvalidity_of(box) != uidvalidity:
                raise imaplib.IMAP4.error("UIDVALIDITY changed during the pass")
        except BaseException:
            close_quietly(box)
            raise
        return box

    def _known(self, uidvalidity: int, uids: Sequence[int]) -> set[int]:
        """The UIDs of the folder that an earlier pass stored (and did not get to move)."""
        with transaction(self._factory, commit=False) as session:
            return set(
                session.scalars(
                    sql_select(ImapKey.uid).where(
                        ImapKey.mailbox == self.mailbox.name,
                        ImapKey.uidvalidity == uidvalidity,
                        ImapKey.uid.between(min(uids), max(uids)),
                    )
                )
            )

    def _commit(
        self, uidvalidity: int, fetched: dict[int, bytes], resumed: list[int], result: DrainResult
    ) -> list[int]:
        """Store fetched messages with their keys, fenced by the lease; return the UIDs to move."""
        name = self.mailbox.name
        if not fetched:
            with self._counting:
                result.resumed += len(resumed)
            return resumed
        now = self._clock.now()
        with transaction(self._factory) as session:
            stored = store_batch(
                session,
                [
                    (raw, Envelope("imap", source_ref=f"{name}:{uidvalidity}:{uid}"))
                    for uid, raw in fetched.items()
                ],
                now,
            )
            session.connection().execute(
                insert(ImapKey),
                [
                    {
                        "mailbox": name,
                        "uidvalidity": uidvalidity,
                        "uid": uid,
                        "inbound_id": outcome.inbound_id,
                        "stored_at": now,
                    }
                    for uid, outcome in zip(fetched, stored, strict=True)
                ],
            )
            # Last, so that a batch committing beside this one holds the lease row only briefly.
            lease.renew(session, self.lease_name, self._holder, now, self._ttl)
        new = sum(1 for outcome in stored if not outcome.duplicate)
        with self._counting:
            result.resumed += len(resumed)
            result.stored += new
            result.duplicates += len(stored) - new
        if new and self._on_stored is not None:
            self._on_stored(new)
        return sorted([*resumed, *fetched])

    def _refuse(self, fetched: dict[int, bytes], result: DrainResult) -> list[int]:
        """Take what is not mail out of ``fetched`` (logged with the reason); its UIDs."""
        refused = []
        for uid, raw in list(fetched.items()):
            reason = not_mail_reason(raw)
            if reason is not None:
                log.warning(
                    "%s: UID %d is not mail (%s); set aside", self.mailbox.name, uid, reason
                )
                del fetched[uid]
                refused.append(uid)
        with self._counting:
            result.rejected += len(refused)
        return refused

    def _set_aside(self, box: BaseMailBox, uids: list[int]) -> None:
        """Move refused messages to the rejected folder, or flag them there; never delete."""
        if not uids:
            return
        if self.mailbox.rejected_folder:
            box.move(uid_set(uids), self.mailbox.rejected_folder)
            return
        flagged = box.client.uid("STORE", uid_set(uids), "+FLAGS.SILENT", f"({REJECTED_KEYWORD})")
        check_command_status(flagged, MailboxFlagError)

    def _take_out(self, box: BaseMailBox, uids: list[int]) -> None:
        """Move committed messages to the processed folder, or flag them when there is none."""
        if not uids:
            return
        if self.mailbox.processed_folder:
            box.move(uid_set(uids), self.mailbox.processed_folder)
            return
        flagged = box.client.uid("STORE", uid_set(uids), "+FLAGS.SILENT", f"({STORED_KEYWORD})")
        check_command_status(flagged, MailboxFlagError)

    def _wait(self, box: BaseMailBox, stop: threading.Event) -> None:
        """Wait for new mail: IDLE until the server reports it, or sleep the poll interval.

        The lease is renewed meanwhile; a connection the server closed raises ConnectionError.
        """
        use_idle = self.settings.idle and "IDLE" in box.client.capabilities
        wait_s = self.settings.idle_timeout_s if use_idle else self.settings.poll_interval_s
        deadline = time.monotonic() + wait_s
        renew_every = self.settings.lease_ttl_s / 3
        next_renewal = time.monotonic() + renew_every
        got_mail = False
        if use_idle:
            # Mail that arrived during the last command (or with the IDLE reply itself) was
            # announced already; imaplib has kept that EXISTS among the untagged responses.
            if announced(box):
                return
            box.idle.start()  # type: ignore[no-untyped-call]
            got_mail = announced(box)
        while not got_mail and not stop.is_set() and time.monotonic() < deadline:
            if time.monotonic() >= next_renewal:
                self._renew()
                next_renewal = time.monotonic() + renew_every
            step = min(_POLL_STEP_S, max(0.0, deadline - time.monotonic()))
            if not use_idle:
                stop.wait(step)
            elif readable(box, step):
                got_mail = new_mail(box.client.readline())
        if use_idle:
            box.idle.stop()  # type: ignore[no-untyped-call]

    def _report(self, result: DrainResult) -> None:
        if result.total:
            log.info(
                "%s: stored %d, duplicates %d, resumed %d, not mail (set aside) %d",
                self.mailbox.name,
                result.stored,
                result.duplicates,
                result.resumed,
                result.rejected,
            )

    def _acquire(self) -> str:
        with transaction(self._factory) as session:
            return lease.acquire(
                session, self.lease_name, self._holder, self._clock.now(), self._ttl
            )

    def _renew(self) -> None:
        with transaction(self._factory) as session:
            lease.renew(session, self.lease_name, self._holder, self._clock.now(), self._ttl)

    def _release(self) -> None:
        try:
            with transaction(self._factory) as session:
                lease.release(session, self.lease_name, self._holder)
        except TransientError as error:  # it expires on its own
            log.warning("%s: could not release the lease: %s", self.mailbox.name, error)
