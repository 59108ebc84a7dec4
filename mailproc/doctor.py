"""``mailproc doctor``: check the configuration and everything it points at, one line each."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import MailboxLoginError
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from mailproc.app import App
from mailproc.config import Settings
from mailproc.config_transport import ImapMailboxSettings, split_host_port
from mailproc.errors import TransientError
from mailproc.outbound.transports import SmtpTransport
from mailproc.store import migrate
from mailproc.store.agents import StoredAgent, stored_agents
from mailproc.store.db import first_line, missing_sqlite_file, transaction
from mailproc.store.models import Inbound

Status = Literal["ok", "warning", "error"]
CLOCK_TOLERANCE: Final = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class Check:
    """One line of the report; an error carries its exit code (75 temporary, 78 config)."""

    name: str
    status: Status
    detail: str
    exit_code: int = 0

    def __str__(self) -> str:
        return f"{self.status:<7} {self.name}: {self.detail}"


def ok(name: str, detail: str) -> Check:
    """A check that passed."""
    return Check(name, "ok", detail)


def warning(name: str, detail: str) -> Check:
    """Works, but probably not as meant."""
    return Check(name, "warning", detail)


def config_error(name: str, detail: str) -> Check:
    """Needs a change of configuration (exit 78)."""
    return Check(name, "error", detail, os.EX_CONFIG)


def temporary_error(name: str, detail: str) -> Check:
    """Something the configuration points at does not answer now (exit 75)."""
    return Check(name, "error", detail, os.EX_TEMPFAIL)


def exit_code(checks: list[Check]) -> int:
    """78 when a configuration error was found, else 75 for any other error, else 0."""
    codes = {check.exit_code for check in checks}
    return os.EX_CONFIG if os.EX_CONFIG in codes else max(codes, default=0)


def diagnose(settings: Settings, config: Path) -> Iterator[Check]:
    """Every check, in order; none of them changes anything."""
    yield ok("config", f"{config if config.exists() else 'built-in defaults'} is valid")
    missing = missing_sqlite_file(settings.database.url)
    stored: tuple[StoredAgent, ...] = ()
    if missing is not None:
        yield config_error("database", f"no database here ({missing}): run `mailproc init`")
    else:
        app = App(settings)
        try:
            yield _safely("database", lambda: _database(app))
            yield _safely("clock", lambda: _clock(app))
            with (
                contextlib.suppress(TransientError, SQLAlchemyError),
                transaction(app.sessions, commit=False) as session,
            ):
                stored = stored_agents(session)
        finally:
            app.close()
    yield _safely("relay", lambda: _relay(settings))
    for mailbox in settings.imap.mailboxes:
        yield _mailbox(settings, mailbox)
    yield _listener(settings)
    yield _agents(settings, stored)


def _safely(name: str, check: Callable[[], Check]) -> Check:
    """A check whose database or network failure is its temporary error."""
    try:
        return check()
    except (OSError, TransientError, SQLAlchemyError) as error:
        return temporary_error(name, first_line(error))


def _database(app: App) -> Check:
    current = migrate.current_revision(app.engine)
    head = migrate.head_revision()
    if current != head:
        return config_error(
            "database", f"at revision {current or 'base'}, not {head}: run `mailproc db upgrade`"
        )
    return ok("database", f"{app.engine.url.render_as_string()} at revision {head}")


def _clock(app: App) -> Check:
    """PostgreSQL: the server's clock agrees; SQLite: no stored mail is from our future."""
    now = app.clock.now()
    with transaction(app.sessions, commit=False) as session:
        if app.engine.dialect.name == "postgresql":
            server: dt.datetime = session.scalar(text("SELECT now()"))
            if abs(server - now) > CLOCK_TOLERANCE:
                return warning(
                    "clock",
                    f"{now:%Y-%m-%d %H:%M:%S} UTC is {server - now} off "
                    "the database server's clock",
                )
            return ok("clock", f"{now:%Y-%m-%d %H:%M:%S} UTC agrees with the database server")
        newest = session.scalar(select(func.max(Inbound.received_at)))
    if newest is not None and newest - now > CLOCK_TOLERANCE:
        return warning(
            "clock",
            f"{now:%Y-%m-%d %H:%M:%S} UTC is behind the newest stored mail "
            f"({newest:%Y-%m-%d %H:%M:%S})",
        )
    return ok("clock", f"{now:%Y-%m-%d %H:%M:%S} UTC")


def _relay(settings: Settings) -> Check:
    url = settings.relay.url
    if url.startswith("maildir:"):
        folder = Path(url.removeprefix("maildir:")).expanduser()
        return warning("relay", f"{url}: mail is written to the folder {folder}, not sent")
    return ok("relay", SmtpTransport(settings.relay).check())


def _mailbox(settings: Settings, mailbox: ImapMailboxSettings) -> Check:
    name = f"imap {mailbox.name}"
    try:
        password = mailbox.password or Path(mailbox.password_file).read_text("utf-8").strip()
    except OSError as error:
        return config_error(name, f"password_file: {error.strerror}")
    try:
        with _imap(mailbox, settings.imap.timeout_s) as box:
            box.login(mailbox.user, password, initial_folder=None)
            if not box.folder.exists(mailbox.folder):
                return config_error(name, f"no folder {mailbox.folder!r} for {mailbox.user}")
    except MailboxLoginError:
        where = f"{mailbox.host}:{mailbox.effective_port}"
        return config_error(name, f"{where} refused the login of {mailbox.user}")
    except (OSError, ssl.SSLError) as error:
        return temporary_error(name, f"{mailbox.host}:{mailbox.effective_port}: {error}")
    return ok(name, f"{mailbox.user}@{mailbox.host}:{mailbox.effective_port} {mailbox.folder}")


@contextlib.contextmanager
def _imap(mailbox: ImapMailboxSettings, timeout: float) -> Iterator[BaseMailBox]:
    host, port = mailbox.host, mailbox.effective_port
    box: BaseMailBox
    if mailbox.security == "tls":
        box = MailBox(host, port, timeout, ssl_context=ssl.create_default_context())
    elif mailbox.security == "starttls":
        box = MailBoxStartTls(host, port, timeout, ssl_context=ssl.create_default_context())
    else:
        box = MailBoxUnencrypted(host, port, timeout)
    try:
        yield box
    finally:
        with contextlib.suppress(Exception):
            box.logout()


def _listener(settings: Settings) -> Check:
    listen = settings.listener.listen
    if not settings.serve.listener:
        return ok("listener", "off ([serve] listener = false)")
    host, port = split_host_port(listen)
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return warning("listener", f"{listen} is in use (is `mailproc serve` running?)")
        return config_error("listener", f"cannot listen on {listen}: {error.strerror}")
    return ok("listener", f"{listen} is free ({settings.listener.protocol})")


def _agents(settings: Settings, stored: tuple[StoredAgent, ...]) -> Check:
    ours = {address.lower() for address in settings.support.addresses}
    agents = settings.identity.agents
    looping = sorted(
        address
        for address in (
            settings.notify.agents_address,
            *(a for agent in agents for a in agent.addresses),
        )
        if address.lower() in ours
    )
    if looping:
        return config_error("agents", f"{', '.join(looping)} is also a support address (a loop)")
    if not agents and not stored:
        return warning(
            "agents",
            "no [[identity.agents]] nor `mailproc agents add`: agents' replies count as "
            "customer mail",
        )
    return ok(
        "agents",
        f"{len(agents)} configured and {len(stored)} stored agent(s); new tickets announced "
        f"to {settings.notify.agents_address}",
    )
