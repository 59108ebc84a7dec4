"""The SMTP/LMTP listener: accept mail for our addresses only, commit it durably, then answer.

``250`` is sent only after the raw message is committed (through the group committer); when it
cannot be stored the answer is ``451 4.3.0`` so that the sending MTA retries. The bytes are
stored exactly as received, without a ``Received:`` header of ours, so that a retry of the same
message after a lost ``250`` is recognized as a duplicate; the trace (peer, envelope sender and
recipients, time) is kept in the ``inbound`` row instead.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import logging
import secrets
import socket
import ssl
from collections.abc import Iterable
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from pathlib import Path
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession

from mailproc.adapters.groupcommit import GroupCommitter
from mailproc.config_transport import ListenerSettings, split_host_port
from mailproc.core.addresses import normalize_address
from mailproc.core.rawmail import not_mail_reason
from mailproc.errors import TransientError
from mailproc.intake.store import Envelope

log = logging.getLogger(__name__)

# Commands that can keep a connection busy without sending mail are capped per connection.
_CALL_LIMITS = {"NOOP": 50, "HELP": 10, "VRFY": 10, "EXPN": 10, "AUTH": 5, "*": 1_000_000}
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class RecipientPolicy:
    """Which recipients we accept: the support addresses and their ``+tag`` sub-addresses."""

    def __init__(self, addresses: Iterable[str], domain: str) -> None:
        bases: set[str] = set()
        for address in addresses:
            local, _, address_domain = address.partition("@")
            bases.update({f"{local}@{address_domain}", f"{local}@{domain}"})
        self._bases = frozenset(bases)

    def accepts(self, address: str) -> bool:
        """True for a support address, or ``local+anything@`` one of them (reply tokens)."""
        normalized = normalize_address(address)
        if normalized is None:
            return False
        local, _, domain = normalized.partition("@")
        return f"{local.split('+', 1)[0]}@{domain}" in self._bases


class IntakeHandler:
    """aiosmtpd hooks: recipient policy at RCPT, durable storage at the end of DATA."""

    def __init__(
        self,
        committer: GroupCommitter,
        policy: RecipientPolicy,
        *,
        lmtp: bool,
        max_recipients: int,
    ) -> None:
        self._committer = committer
        self._policy = policy
        self._lmtp = lmtp
        self._max_recipients = max_recipients
        self.in_flight = 0

    async def handle_MAIL(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: SmtpEnvelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if not _is_utf8(address):
            return "553 5.1.7 Sender address is not valid UTF-8"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: SmtpEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not _is_utf8(address) or not self._policy.accepts(address):
            log.info("%s: refused recipient %r (not ours)", _peer(session.peer), address)
            return "550 5.7.1 Relaying denied: this server accepts mail for its own addresses only"
        if len(envelope.rcpt_tos) >= self._max_recipients:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope) -> str:
        raw = envelope.original_content or b""
        peer = _peer(session.peer)
        refusal = not_mail_reason(raw)
        if refusal is not None:
            log.info("%s: refused a message: %s", peer, refusal)
            return self._reply(envelope, "554", "5.6.0", f"message refused: {refusal}")
        self.in_flight += 1
        try:
            stored = await self._committer.store(
                raw,
                Envelope(
                    source="lmtp" if self._lmtp else "smtp",
                    source_ref=peer,
                    mail_from=None
                    if envelope.mail_from in (None, "", "<>")
                    else envelope.mail_from,
                    rcpt_to=tuple(envelope.rcpt_tos),
                ),
            )
        except Exception as error:
            if isinstance(error, TransientError):
                log.warning("%s: message not stored, answered 451: %s", peer, error)
            else:
                log.exception("%s: message not stored, answered 451", peer)
            return self._reply(envelope, "451", "4.3.0", "message not stored, try again later")
        finally:
            self.in_flight -= 1
        what = "duplicate of" if stored.duplicate else "stored as"
        return self._reply(envelope, "250", "2.0.0", f"OK {what} {stored.inbound_id}")

    def _reply(self, envelope: SmtpEnvelope, code: str, enhanced: str, text: str) -> str:
        """One reply for SMTP; for LMTP one line per accepted recipient (RFC 2033 §4.2)."""
        if not self._lmtp:
            return f"{code} {enhanced} {text}"
        return "\r\n".join(f"{code} {enhanced} <{rcpt}> {text}" for rcpt in envelope.rcpt_tos)


class PasswordFile:
    """AUTH PLAIN/LOGIN against a file of ``user:hash`` lines (see ``hash_password``)."""

    def __init__(self, path: Path) -> None:
        self._users: dict[str, str] = {}
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            user, sep, hashed = line.strip().partition(":")
            if not sep or not user or not hashed.startswith("scrypt$"):
                raise ValueError(f"{path}:{number}: expected user:scrypt$...")
            self._users[user] = hashed

    def __call__(
        self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        hashed = self._users.get(data.login.decode("utf-8", "replace"))
        ok = hashed is not None and verify_password(data.password, hashed)
        if not ok:
            log.warning("%s: failed AUTH for %r", _peer(session.peer), data.login)
        return AuthResult(success=ok, handled=False)


def hash_password(password: str) -> str:
    """A salted scrypt hash for the listener's ``auth_file``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)
    return f"scrypt${_b64(salt)}${_b64(digest)}"


def verify_password(password: bytes, hashed: str) -> bool:
    """True when ``password`` matches a ``hash_password`` hash."""
    try:
        _, salt, digest = hashed.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password, salt=base64.b64decode(salt), **_SCRYPT)
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def make_tls_context(cert: str, key: str) -> ssl.SSLContext:
    """Server TLS context for STARTTLS; raises OSError or ssl.SSLError for a bad pair."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class ListenerSMTP(SMTP):
    """An SMTP session that registers itself so that shutdown can close idle connections.

    It also parses MAIL/RCPT addresses as aiosmtpd does, but cached and without the class that
    aiosmtpd's ``_getaddr`` builds on every call: that parse was a fifth of the listener's CPU.
    """

    def __init__(self, handler: IntakeHandler, *, sessions: set[SMTP], **kwargs: Any) -> None:
        self._sessions = sessions
        super().__init__(handler, **kwargs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(error)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        if not arg:
            return "", ""
        address, rest = _parse_address(arg)
        if address is None or (
            self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit
        ):
            return None, None
        return address, rest


@functools.lru_cache(maxsize=1024)
def _parse_address(arg: str) -> tuple[str | None, str | None]:
    """(address, rest of the line) of a MAIL/RCPT argument, or (None, None) when unparsable."""
    parse = get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec
    try:
        address, rest = parse(arg)
    except HeaderParseError:
        return None, None
    return str(address.addr_spec), rest


class ListenerLMTP(ListenerSMTP, LMTP):
    """The LMTP variant (LHLO instead of EHLO, one DATA reply per recipient)."""


class Listener:
    """The listening socket, its sessions and the group committer behind them."""

    def __init__(
        self,
        settings: ListenerSettings,
        committer: GroupCommitter,
        policy: RecipientPolicy,
        *,
        max_message_bytes: int,
        tls_context: ssl.SSLContext | None = None,
        authenticator: PasswordFile | None = None,
    ) -> None:
        self.settings = settings
        self.host, self.port = split_host_port(settings.listen)
        self.handler = IntakeHandler(
            committer,
            policy,
            lmtp=settings.protocol == "lmtp",
            max_recipients=settings.max_recipients,
        )
        self.committer = committer
        self._sessions: set[SMTP] = set()
        self._options: dict[str, Any] = {
            "data_size_limit": max_message_bytes,
            "enable_SMTPUTF8": True,
            "hostname": settings.hostname or socket.getfqdn(),
            "ident": "ESMTP mailproc",
            "tls_context": tls_context,
            "require_starttls": settings.require_starttls,
            "timeout": settings.timeout_s,
            "auth_required": settings.auth_required,
            "authenticator": authenticator,
            "auth_exclude_mechanism": None if authenticator else ["LOGIN", "PLAIN"],
            "command_call_limit": _CALL_LIMITS,
        }
        self._server: asyncio.Server | None = None
        self._committer_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind and start serving; raises OSError when the address cannot be bound."""
        loop = asyncio.get_running_loop()
        session_class = ListenerLMTP if self.settings.protocol == "lmtp" else ListenerSMTP
        await self.committer.start()
        self._committer_task = loop.create_task(self.committer.run())
        try:
            self._server = await loop.create_server(
                lambda: session_class(
                    self.handler, sessions=self._sessions, loop=loop, **self._options
                ),
                self.host,
                self.port,
            )
        except OSError:
            await self._stop_committer()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("%s listening on %s:%d", self.settings.protocol.upper(), self.host, self.port)

    async def stop(self, grace_s: float) -> None:
        """Stop accepting, let messages being committed get their answer, then hang up."""
        if self._server is not None:
            self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self.handler.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self.handler.in_flight:
            log.warning("%d message(s) still being stored at shutdown", self.handler.in_flight)
        await asyncio.sleep(0)  # let the handlers that just finished write their replies
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        await self._stop_committer()
        if self._server is not None:
            await self._server.wait_closed()
        log.info("listener stopped")

    async def _stop_committer(self) -> None:
        self.committer.close()
        if self._committer_task is not None:
            await self._committer_task


def _is_utf8(value: str) -> bool:
    """False when aiosmtpd had to smuggle undecodable bytes in as surrogates."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return str(peer)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
