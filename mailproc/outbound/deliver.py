"""The deliverer: sends due outbox mail through the relay (SMTP or a Maildir), a batch at a time.

A batch takes three short transactions, none held while rendering or talking to the relay:

1. claim (``attempts.claim_due``): up to ``outbox.batch_size`` due rows, customer-facing mail
   before internal mail, oldest first, become ``sending`` with ``attempts + 1`` and a lease
   (``next_attempt_at = now + LEASE_TIMEOUTS x relay.timeout_s``);
2. keep the bytes: deferred mail is rendered and composed outside any transaction, and the
   bytes are stored (with the thread records' subject and text) before anything is sent, so
   every retry sends the same bytes with the same Message-ID;
3. record the results (``attempts.record_results``) after the batch went over one relay
   session (SMTP: one connection, one mail transaction per mail; Maildir: one fsync of the
   directory per batch).

With a build pool (``deliver_all_due(pool=...)``: ``serve`` and ``deliver --once``), a full
batch has the workers build the rows the next claim will most likely take while it is sent;
that claim keeps their bytes in its own transaction (``buildpool``). In a stream of full
batches the workers begin before the claim, on the due rows past the batch it takes, so they
build while it runs too.

Recipients the relay accepted are ``sent`` and never get the mail again; 5xx refusals fail that
recipient with the reply as the reason; 4xx replies, refused connections, timeouts, DNS, TLS and
authentication problems are transient: the row goes back to ``pending`` with
``next_attempt_at = now + min(backoff_initial_s x 2**(attempts-1), backoff_max_s)``, the last
attempt at ``deadline_at``, after which it fails with the last reason. Recipients whose address
bounced permanently (``undeliverable_addresses``) are failed at claim time without being sent
to; a row with none left fails. A mail that cannot be built fails with the reason.

Crash window: a deliverer that dies (or loses the database) after the claim and before the
results leaves ``sending`` rows. When their lease runs out they are due again and are resent
with the same bytes and Message-ID, an ``outbound.retry`` event saying so: delivery is
at-least-once in that window only, and mail clients de-duplicate by Message-ID. A late result of
a superseded attempt is not recorded (the attempt number fences it).

When the relay cannot be reached, the round stops: the claims not attempted yet are given back
as they were, and the due mail is reported as ``skipped``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from mailproc.clock import Clock
from mailproc.config import Settings
from mailproc.outbound.attempts import (
    Claim,
    Failure,
    claim_due,
    count_due,
    due_unbuilt,
    record_results,
    release,
)
from mailproc.outbound.build import BuiltMail, attachment_files, build, store_built
from mailproc.outbound.buildpool import BuildPool, BuildsAhead
from mailproc.outbound.compose import HeaderError
from mailproc.outbound.outbox import OutboxStatus
from mailproc.outbound.render import Renderer, RenderError
from mailproc.outbound.transports import MailRejected, RelayUnavailable, Transport, make_transport
from mailproc.outbound.values import Company, company_from
from mailproc.store.db import transaction

log = logging.getLogger(__name__)

# A send is a handful of SMTP commands, each bounded by relay.timeout_s: the lease is generous.
LEASE_TIMEOUTS: Final = 20

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class DeliverySummary:
    """What a delivery round did: mails sent, put back for a retry, failed, left for later."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0

    def __add__(self, other: DeliverySummary) -> DeliverySummary:
        return DeliverySummary(
            self.sent + other.sent,
            self.retried + other.retried,
            self.failed + other.failed,
            self.skipped + other.skipped,
        )

    def __str__(self) -> str:
        return (
            f"sent {self.sent}, retried {self.retried}, failed {self.failed},"
            f" skipped {self.skipped}"
        )

    @property
    def handled(self) -> int:
        """Mails attempted (or finished without an attempt) in the round."""
        return self.sent + self.retried + self.failed


def deliver_due(
    sessions: sessionmaker[Session], settings: Settings, clock: Clock
) -> DeliverySummary:
    """Deliver one batch of up to ``outbox.batch_size`` due mails over one relay session."""
    transport = make_transport(settings.relay)
    try:
        return _deliver_batch(sessions, settings, clock, transport)[0]
    finally:
        transport.close()


def deliver_all_due(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: Clock,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    pool: BuildPool | None = None,
) -> DeliverySummary:
    """Deliver batches over one relay session until one claims less than a full batch, the
    relay is down or ``stop`` is set; ``progress`` gets the number of mails of each batch.

    With a ``pool``, once a batch came full the workers build the next batch's mail while this
    one is sent (``buildpool``); the first full batch starts them in the background.
    """
    total = DeliverySummary()
    transport = make_transport(settings.relay)
    ahead = _Ahead(pool, sessions, clock, settings)
    try:
        while stop is None or not stop.is_set():
            summary, claimed = _deliver_batch(sessions, settings, clock, transport, ahead)
            total += summary
            if progress is not None and claimed:
                progress(claimed)
            if claimed < settings.outbox.batch_size or summary.skipped:
                break
    finally:
        ahead.cancel()
        transport.close()
    return total


class _Ahead:
    """The next batch's mail, being built in the pool's workers while this batch is claimed
    and sent."""

    def __init__(
        self,
        pool: BuildPool | None,
        sessions: sessionmaker[Session],
        clock: Clock,
        settings: Settings,
    ) -> None:
        self._pool = pool
        self._sessions = sessions
        self._clock = clock
        self._size = settings.outbox.batch_size
        self._building: BuildsAhead | None = None
        self._streaming = False  # the last claim came full: more mail is likely due behind it

    def before_claim(self) -> None:
        """In a stream of full batches, begin building the batch after the one about to be
        claimed (the due rows past the first batch), so the workers build during the claim."""
        if self._streaming and self._building is None:
            self._start(offset=self._size)

    def after_claim(self, claimed: int) -> None:
        """Note how many rows the claim took; after a full claim with nothing being built,
        begin building the next batch (the first full batch starts the workers)."""
        self._streaming = claimed == self._size
        if self._streaming and self._building is None:
            self._start(offset=0)

    def _start(self, offset: int) -> None:
        if self._pool is None:
            return
        if not self._pool.ready():
            self._pool.warm()
            return
        with transaction(self._sessions, commit=False) as session:
            jobs = due_unbuilt(session, self._clock.now(), self._size, offset=offset)
        self._building = self._pool.start(jobs)

    def take(self) -> dict[int, BuiltMail]:
        """What was built ahead, by outbox id (waiting for the workers)."""
        building, self._building = self._building, None
        return building.results() if building is not None else {}

    def cancel(self) -> None:
        """Drop what is still being built (the round ends)."""
        if self._building is not None:
            self._building.cancel()
            self._building = None


def renderer_for(settings: Settings) -> Renderer:
    """The renderer for deferred mail, built once per distinct company settings."""
    return _renderer(company_from(settings))


@functools.cache
def _renderer(company: Company) -> Renderer:
    return Renderer(company)


_COUNTED_AS: Final = {
    OutboxStatus.SENT: "sent",
    OutboxStatus.PENDING: "retried",
    OutboxStatus.FAILED: "failed",
    None: "skipped",
}


def _deliver_batch(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: Clock,
    transport: Transport,
    ahead: _Ahead | None = None,
) -> tuple[DeliverySummary, int]:
    """Claim, build, send and record one batch; the summary and the number of rows claimed.

    ``ahead`` builds the next batch meanwhile: from before this claim when the last one came
    full, else from a full claim on."""
    lease = dt.timedelta(seconds=LEASE_TIMEOUTS * settings.relay.timeout_s)
    built = ahead.take() if ahead is not None else {}
    if ahead is not None:
        ahead.before_claim()
    with transaction(sessions) as session:
        claims = claim_due(
            session,
            clock.now(),
            lease,
            settings.outbox.batch_size,
            undeliverable_for=dt.timedelta(days=settings.outbox.undeliverable_days),
            built=built,
        )
    counts = dict.fromkeys(("sent", "retried", "failed", "skipped"), 0)
    for claim in claims:
        if claim.finished is not None:
            counts[_COUNTED_AS[claim.finished]] += 1
    if ahead is not None:
        ahead.after_claim(len(claims))  # before this batch's own builds, which run meanwhile
    results, ready = _build(
        [c for c in claims if c.finished is None], renderer_for(settings), sessions
    )
    left: list[Claim] = []
    relay_down = False
    for index, (claim, raw) in enumerate(ready):
        refused, relay_down = _attempt(transport, claim, raw)
        results.append((claim, refused))
        if relay_down:
            left = [later for later, _ in ready[index + 1 :]]
            break
    results, unflushed = _flushed(transport, results)
    relay_down = relay_down or unflushed
    if not results:
        return DeliverySummary(**counts), len(claims)
    with transaction(sessions) as session:
        statuses = record_results(session, results, clock.now(), settings.outbox)
        release(session, left)
    for status in statuses:
        counts[_COUNTED_AS[status]] += 1
    if relay_down:
        with transaction(sessions, commit=False) as session:
            counts["skipped"] += count_due(session, clock.now())
    return DeliverySummary(**counts), len(claims)


def _build(
    claims: Sequence[Claim], renderer: Renderer, sessions: sessionmaker[Session]
) -> tuple[list[tuple[Claim, dict[str, Failure]]], list[tuple[Claim, bytes]]]:
    """The claims' bytes, building deferred mail and keeping it before anything is sent; the
    mails that cannot be built come back as permanently refused."""
    unbuildable: list[tuple[Claim, dict[str, Failure]]] = []
    ready: list[tuple[Claim, bytes]] = []
    built: dict[str, BuiltMail] = {}
    deferred = [claim.envelope for claim in claims if claim.raw is None]
    files: dict[str, bytes] = {}
    if any(envelope and envelope.get("attachments") for envelope in deferred):
        with transaction(sessions, commit=False) as session:
            files = attachment_files(session, deferred)
    for claim in claims:
        if claim.raw is not None:
            ready.append((claim, claim.raw))
            continue
        try:
            mail = build(
                claim.outbox_id,
                claim.template,
                claim.locale,
                claim.context,
                claim.envelope,
                renderer,
                files,
            )
        except (RenderError, HeaderError) as error:
            unbuildable.append((claim, dict.fromkeys(claim.recipients, Failure(str(error), True))))
            continue
        built[claim.message_id] = mail
        ready.append((claim, mail.raw))
    if built:
        with transaction(sessions) as session:
            store_built(session, built)
    return unbuildable, ready


def _attempt(transport: Transport, claim: Claim, raw: bytes) -> tuple[dict[str, Failure], bool]:
    """Send a claimed mail: the refused recipients, and whether the relay is unreachable."""
    label = f"{claim.ticket_number or 'none'}-{claim.template}"
    try:
        return transport.send(claim.envelope_from, claim.recipients, raw, label), False
    except RelayUnavailable as error:
        return dict.fromkeys(claim.recipients, Failure(str(error), permanent=False)), True
    except MailRejected as error:
        return dict.fromkeys(claim.recipients, error.failure), False


def _flushed(
    transport: Transport, results: list[tuple[Claim, dict[str, Failure]]]
) -> tuple[list[tuple[Claim, dict[str, Failure]]], bool]:
    """The results once the transport made the batch durable, and whether it could not: then
    the accepted recipients are refused for now (the next attempt may deliver them twice)."""
    try:
        transport.flush()
    except RelayUnavailable as error:
        failure = Failure(str(error), permanent=False)
        refused_all = [
            (claim, {a: refused.get(a, failure) for a in claim.recipients})
            for claim, refused in results
        ]
        return refused_all, True
    return results, False
