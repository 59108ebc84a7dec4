"""Relay transports of the deliverer: an SMTP client session, or a Maildir for development."""

from __future__ import annotations

import os
import re
import smtplib
import ssl
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import urlsplit

from mailproc.config_transport import RelaySettings
from mailproc.errors import MailprocError, TransientError
from mailproc.outbound.attempts import Failure

DEFAULT_PORTS: Final = {"smtp": 25, "smtps": 465}


class RelayUnavailable(TransientError):
    """The relay could not be reached or would not talk to us; nothing was accepted."""


class MailRejected(MailprocError):
    """The relay refused the whole mail (at MAIL FROM or DATA)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


class Transport(Protocol):
    """Hands mail to the relay, one after another over one session."""

    def send(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes, label: str = ""
    ) -> dict[str, Failure]:
        """Hand over one mail (``label`` names it where the transport keeps names); the refused
        recipients with the reasons. Raises RelayUnavailable or MailRejected when no
        recipient was accepted."""
        ...

    def flush(self) -> None:
        """Make what was accepted since the last flush durable; RelayUnavailable if it cannot."""
        ...

    def close(self) -> None:
        """End the session with the relay, if any."""
        ...


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

    def send(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes, label: str = ""
    ) -> dict[str, Failure]:
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

    def flush(self) -> None:
        """Nothing to do: the relay took responsibility for each mail at its 250."""

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
    """Writes each mail into a Maildir (``tmp/`` then renamed into ``new/``), for development.

    A file is named ``<time>.<ticket>-<template>.<unique>`` so that a person finds a ticket's
    mail with ``ls new/*.10001-*``. The files are written by one writer thread while the
    deliverer builds the next mail (creating a file is a few hundred microseconds in the
    kernel, which a thread spends off the GIL); ``flush`` waits for the batch's files and syncs
    ``new/`` once. A write that failed makes the next ``send`` and ``flush`` raise
    RelayUnavailable, so no mail counts as accepted before its file is in ``new/``. A file's
    data is not synced on its own (per-file syncs cost more than building the mail), so after
    a power loss a file system that does not order data before renames (ext4
    ``data=ordered`` does) may show an empty file for mail recorded as sent.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._unique = uuid.uuid4().hex  # one random draw per transport, not per file
        self._written = 0
        self._writer: ThreadPoolExecutor | None = None
        self._writes: list[Future[None]] = []
        self._failed: OSError | None = None

    def send(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes, label: str = ""
    ) -> dict[str, Failure]:
        """Hand the mail to the writer; every recipient counts as accepted once flushed."""
        self._raise_failed()
        if self._writer is None:
            try:
                for folder in ("tmp", "new", "cur"):
                    (self._path / folder).mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise self._unavailable(error) from error
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="maildir")
        self._written += 1  # unique: this transport's random part, then a count
        name = f"{int(time.time())}.{_SAFE_LABEL.sub('_', label)}.{self._unique}{self._written:x}"
        self._writes.append(self._writer.submit(self._write, name, raw))
        return {}

    def _write(self, name: str, raw: bytes) -> None:
        temporary = os.path.join(self._path, "tmp", name)
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(descriptor, "wb") as handle:
                handle.write(raw.replace(b"\r\n", b"\n"))  # Maildir files end lines in LF
            os.rename(temporary, os.path.join(self._path, "new", name))
        except OSError as error:
            self._failed = self._failed or error
            raise

    def flush(self) -> None:
        """Wait for the files handed over since the last flush and sync ``new/`` once."""
        writes, self._writes = self._writes, []
        wait(writes)
        self._raise_failed()
        if not writes:
            return
        try:
            _fsync_directory(self._path / "new")
        except OSError as error:
            raise RelayUnavailable(f"cannot sync maildir {self._path}: {error}") from error

    def close(self) -> None:
        """Let the writer finish the files handed to it, and stop it."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def _raise_failed(self) -> None:
        if self._failed is not None:
            raise self._unavailable(self._failed)

    def _unavailable(self, error: OSError) -> RelayUnavailable:
        return RelayUnavailable(f"cannot write to maildir {self._path}: {error}")


_SAFE_LABEL: Final = re.compile(r"[^A-Za-z0-9_-]")


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
