"""Settings of the transports: the SMTP/LMTP listener, the IMAP poller, the relay and the
outbox's retries, and the long-running ``serve``. Part of ``Settings`` (``mailproc.config``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    """One ``[section]`` of the settings: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RelaySettings(Section):
    """Where outbound mail goes: ``smtp://host:port``, ``smtps://host:port`` or ``maildir:PATH``."""

    url: str = "maildir:outbox"
    starttls: bool = False
    username: str = ""
    password: str = Field("", repr=False)
    password_file: str = ""
    envelope_sender: str = ""  # empty: the first support address
    timeout_s: float = Field(30, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("smtp://", "smtps://", "maildir:")):
            raise ValueError("must start with smtp://, smtps:// or maildir:")
        return url


class OutboxSettings(Section):
    """Retries of outbound mail: exponential backoff until a deadline."""

    batch_size: int = Field(200, ge=1, le=5000)
    # processes that render the next batch while this one is sent (0: render in-process)
    build_workers: int = Field(1, ge=0, le=16)
    backoff_initial_s: float = Field(30, gt=0)
    backoff_max_s: float = Field(3600, gt=0)
    retry_deadline_hours: float = Field(48, gt=0)
    # A bounce stops mail to an address for this long (mail from it, or a delivery, ends it).
    undeliverable_days: float = Field(30, gt=0, le=3650)


# --- serve: listener, IMAP poller, supervisor (issue 6) ---------------------------------------


def split_host_port(value: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[::1]:25`` for IPv6) into a host and a port number."""
    host, sep, port = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r} is not HOST:PORT")
    return host, int(port)


class ListenerSettings(Section):
    """The SMTP/LMTP listener of ``mailproc serve``."""

    listen: str = "127.0.0.1:8025"
    protocol: Literal["smtp", "lmtp"] = "smtp"
    hostname: str = ""
    max_recipients: int = Field(default=100, ge=1, le=10_000)
    timeout_s: float = Field(default=300, gt=0, le=3600)
    tls_cert: str = ""
    tls_key: str = ""
    require_starttls: bool = False
    auth_file: str = ""
    auth_required: bool = False
    group_max: int = Field(default=256, ge=1, le=10_000)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        split_host_port(listen)
        return listen

    @model_validator(mode="after")
    def _consistent(self) -> ListenerSettings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        if self.require_starttls and not self.tls_cert:
            raise ValueError("require_starttls needs tls_cert and tls_key")
        if self.auth_required and not self.auth_file:
            raise ValueError("auth_required needs auth_file")
        if self.auth_file and not self.tls_cert:
            raise ValueError("auth_file needs tls_cert and tls_key (no passwords in clear)")
        return self


class ImapMailboxSettings(Section):
    """One IMAP mailbox to poll; ``name`` identifies it in keys, leases and source refs."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, gt=0, lt=65536)
    security: Literal["tls", "starttls", "plain"] = "tls"
    user: str
    password: str = Field(default="", repr=False)
    password_file: str = ""
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    rejected_folder: str = "Rejected"  # what is not mail at all; "" flags it in place

    @model_validator(mode="after")
    def _one_password(self) -> ImapMailboxSettings:
        if bool(self.password) == bool(self.password_file):
            raise ValueError("give exactly one of password and password_file")
        if self.processed_folder == self.folder:
            raise ValueError("processed_folder must differ from folder")
        if self.rejected_folder == self.folder:
            raise ValueError("rejected_folder must differ from folder")
        return self

    @property
    def effective_port(self) -> int:
        """The configured port, or the standard one for the security mode."""
        return self.port or (993 if self.security == "tls" else 143)


class ImapSettings(Section):
    """The IMAP poller: mailboxes, push (IDLE) or polling, batch size, lease and backoff."""

    mailboxes: tuple[ImapMailboxSettings, ...] = ()
    idle: bool = True
    idle_timeout_s: float = Field(default=600, gt=0, le=1740)
    poll_interval_s: float = Field(default=60, gt=0)
    fetch_batch: int = Field(default=1000, ge=1, le=5_000)
    fetch_batch_bytes: int = Field(default=32 * 1024 * 1024, ge=1024 * 1024)
    timeout_s: float = Field(default=60, gt=0)
    lease_ttl_s: float = Field(default=60, ge=3)
    backoff_max_s: float = Field(default=300, ge=1)

    @field_validator("mailboxes")
    @classmethod
    def _unique_names(
        cls, mailboxes: tuple[ImapMailboxSettings, ...]
    ) -> tuple[ImapMailboxSettings, ...]:
        names = [mailbox.name for mailbox in mailboxes]
        if len(names) != len(set(names)):
            raise ValueError("mailbox names must be unique")
        return mailboxes


class ServeSettings(Section):
    """What ``mailproc serve`` runs in one process, and how often."""

    listener: bool = True
    pollers: bool = True
    worker: bool = True
    process_interval_s: float = Field(default=10, gt=0)
    tick_interval_s: float = Field(default=60, gt=0)
    shutdown_grace_s: float = Field(default=30, ge=0)
