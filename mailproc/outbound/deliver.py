"""The deliverer: sends due outbox rows through the relay (SMTP or a Maildir) and records results.

Each mail takes two transactions. The first claims it: status ``sending``, ``attempts + 1`` and a
lease (``next_attempt_at = now + LEASE_TIMEOUTS x relay.timeout_s``), committed BEFORE the relay
is contacted. The second records the relay's answer: recipients it accepted are ``sent`` and
never get the mail again; 5xx refusals fail that recipient with the reply as the reason; 4xx
replies, refused connections, timeouts, DNS, TLS and authentication problems are transient: the
row goes back to ``pending`` with ``next_attempt_at = now + min(backoff_initial_s x
2**(attempts-1), backoff_max_s)``, the last attempt at ``deadline_at``, after which it fails with
the last reason. Recipients whose address bounced permanently (``undeliverable_addresses``) are
failed at claim time without being sent to; a row with none left fails.

Crash window: a deliverer that dies (or loses the database) after the claim and before the result
leaves a ``sending`` row. When its lease runs out the row is due again and is resent with the
same bytes and Message-ID, an ``outbound.retry`` event saying so: delivery is at-least-once in
that window only, and mail clients de-duplicate by Message-ID. A late result of the superseded
attempt is not recorded (the attempt number fences it).

When the relay cannot be reached, the round stops: the rest of the due mail keeps its place and
is reported as ``skipped``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import smtplib
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from mailproc.clock import Clock
from mailproc.config import Settings
from mailproc.config_transport import RelaySettings
from mailproc.errors import MailprocError, TransientError
from mailproc.outbound.attempts import Claim, Failure, claim_next, count_due, record_attempt
from mailproc.outbound.contexts import Company, company_from
from mailproc.outbound.outbox import OutboxStatus
from mailproc.outbound.render import Renderer
from mailproc.store.db import transaction

log = logging.getLogger(__name__)

# A send is a handful of SMTP commands, each bounded by relay.timeout_s: the lease is generous.
LEASE_TIMEOUTS: Final = 20
DEFAULT_PORTS: Final = {"smtp": 25, "smtps": 465}


class RelayUnavailable(TransientError):
    """The relay could not be reached or would not talk to us; nothing was accepted."""


class MailRejected(MailprocError):
    """The relay refused the whole mail (at MAIL FROM or DATA)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


class Transport(Protocol):
    """Hands one mail to the relay; returns the refused recipients with the reasons."""

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> dict[str, Failure]:
        """Raises RelayUnavailable or MailRejected when no recipient was accepted."""
        ...

    def close(self) -> None:
        """End the session with the relay, if any."""
        ...


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
    """Attempt up to ``outbox.batch_size`` due mails, one after another, and record each result."""
    lease = dt.timedelta(seconds=LEASE_TIMEOUTS * settings.relay.timeout_s)
    counts = dict.fromkeys(("sent", "retried", "failed", "skipped"), 0)
    transport = make_transport(settings.relay)
    renderer = renderer_for(settings)
    try:
        for _ in range(settings.outbox.batch_size):
            with transaction(sessions) as session:
                claim = claim_next(session, clock.now(), lease, renderer)
            if claim is None:
                break
            if claim.finished is not None:
                counts[_COUNTED_AS[claim.finished]] += 1
                continue
            refused, relay_down = _attempt(transport, claim)
            with transaction(sessions) as session:
                status = record_attempt(session, claim, refused, clock.now(), settings.outbox)
            counts[_COUNTED_AS[status]] += 1
            if relay_down:
                with transaction(sessions, commit=False) as session:
                    counts["skipped"] += count_due(session, clock.now())
                break
    finally:
        transport.close()
    return DeliverySummary(**counts)


def renderer_for(settings: Settings) -> Renderer:
    """The renderer for deferred mail, built once per distinct company settings."""
    return _renderer(company_from(settings))


@functools.cache
def _renderer(company: Company) -> Renderer:
    return Renderer(company)


def deliver_all_due(
    sessions: sessionmaker[Session], settings: Settings, clock: Clock
) -> DeliverySummary:
    """Run delivery rounds until one finds less than a full batch to do or the relay is down."""
    total = DeliverySummary()
    while True:
        summary = deliver_due(sessions, settings, clock)
        total += summary
        if summary.handled < settings.outbox.batch_size or summary.skipped:
            return total


_COUNTED_AS: Final = {
    OutboxStatus.SENT: "sent",
    OutboxStatus.PENDING: "retried",
    OutboxStatus.FAILED: "failed",
    None: "skipped",
}


def _attempt(transport: Transport, claim: Claim) -> tuple[dict[str, Failure], bool]:
    """Send a claimed mail: the refused recipients, and whether the relay is unreachable."""
    try:
        return transport.send(claim.envelope_from, claim.recipients, claim.raw), False
    except RelayUnavailable as error:
        return dict.fromkeys(claim.recipients, Failure(str(error), permanent=False)), True
    except MailRejected as error:
        return dict.fromkeys(claim.recipients, error.failure), False


def make_transport(relay: RelaySettings) -> Transport:
    """The transport ``relay.url`` names: ``maildir:PATH``, ``smtp://`` or ``smtps://``."""
    if relay.url.startswith("maildir:"):
        return MaildirTransport(Path(relay.url.removeprefix("maildir:")).expanduser())
    return SmtpTransport(relay)


class SmtpTransport:
    """SMTP relay client: plain, STARTTLS or implicit TLS, optional AUTH; one session per round."""

    def __init__(self, relay: RelaySettings) -> None:
        url = urlsplit(relay.url)
        self._relay = relay
        self._implicit_tls = url.scheme == "smtps"
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or DEFAULT_PORTS[url.scheme]
        self._where = f"{self._host}:{self._port}"
        self._smtp: smtplib.SMTP | None = None

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> dict[str, Failure]:
        """Run one mail transaction; the session stays open for the next mail."""
        smtp = self._smtp or self._connect()
        try:
            refused = smtp.sendmail(envelope_from, list(recipients), raw)
        except smtplib.SMTPRecipientsRefused as error:
            refused = error.recipients
        except smtplib.SMTPResponseException as error:
            raise MailRejected(_failure(error.smtp_code, error.smtp_error)) from error
        except (OSError, smtplib.SMTPException) as error:
            smtp.close()
            raise RelayUnavailable(f"relay {self._where}: {_describe(error)}") from error
        finally:
            if smtp.sock is None:  # closed above, or by smtplib itself after a 421
                self._smtp = None
        return {address: _failure(code, text) for address, (code, text) in refused.items()}

    def check(self) -> str:
        """Connect and greet as a delivery would (STARTTLS, AUTH), then QUIT; what answered."""
        smtp = self._connect()
        name = (smtp.ehlo_resp or smtp.helo_resp or b"").decode("ascii", "replace")
        self.close()
        return f"{self._where} answers EHLO ({name.splitlines()[0] if name else 'no name'})"

    def close(self) -> None:
        """QUIT, or just drop the connection if the relay is gone."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    def _connect(self) -> smtplib.SMTP:
        relay = self._relay
        context = ssl.create_default_context()
        step = "connect to"
        try:
            if self._implicit_tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self._host, self._port, timeout=relay.timeout_s, context=context
                )
            else:
                smtp = smtplib.SMTP(self._host, self._port, timeout=relay.timeout_s)
        except (OSError, smtplib.SMTPException) as error:
            raise RelayUnavailable(
                f"cannot {step} relay {self._where}: {_describe(error)}"
            ) from error
        try:
            step = "greet"
            smtp.ehlo_or_helo_if_needed()
            if relay.starttls:
                step = "start TLS with"
                smtp.starttls(context=context)
                smtp.ehlo_or_helo_if_needed()
            if relay.username:
                step = "log in to"
                smtp.login(relay.username, self._password())
        except (OSError, smtplib.SMTPException) as error:
            smtp.close()
            raise RelayUnavailable(
                f"cannot {step} relay {self._where}: {_describe(error)}"
            ) from error
        self._smtp = smtp
        return smtp

    def _password(self) -> str:
        if self._relay.password_file:
            return Path(self._relay.password_file).read_text(encoding="utf-8").strip()
        return self._relay.password


class MaildirTransport:
    """Writes each mail into a Maildir (``tmp/`` then renamed into ``new/``), for development."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> dict[str, Failure]:
        """Store the mail as one file; every recipient counts as accepted."""
        try:
            for folder in ("tmp", "new", "cur"):
                (self._path / folder).mkdir(parents=True, exist_ok=True)
            name = f"{uuid.uuid4().hex}.mailproc"
            temporary = self._path / "tmp" / name
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(descriptor, "wb") as handle:
                handle.write(raw.replace(b"\r\n", b"\n"))  # Maildir files end lines in LF
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(temporary, self._path / "new" / name)
            _fsync_directory(self._path / "new")
        except OSError as error:
            raise RelayUnavailable(f"cannot write to maildir {self._path}: {error}") from error
        return {}

    def close(self) -> None:
        """Nothing to release."""


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _failure(code: int, text: bytes | str) -> Failure:
    """A relay reply as a failure: 5xx is permanent, anything else is worth another try."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return Failure(f"{code} {' '.join(text.split())}".strip(), permanent=500 <= code < 600)


def _describe(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return _failure(error.smtp_code, error.smtp_error).reason
    return str(error) or type(error).__name__
