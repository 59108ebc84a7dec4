"""Inbound mail kind (human, auto-reply, bulk, spam, bounce, own mail), bounce details, reply
budget."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum
from typing import Final

from flufl.bounce import all_failures

from mailproc.core.addresses import normalize_address, normalize_domain
from mailproc.core.model import ParsedMessage
from mailproc.core.parse import decode_text_part
from mailproc.core.rawmail import bare_message_id
from mailproc.core.tokens import ReplyAddressScheme, TokenCheck, find_reply_addresses


class MailKind(StrEnum):
    """What sent an inbound mail; only HUMAN mail ever gets an automatic reply (RFC 3834)."""

    HUMAN = "human"
    AUTO_REPLY = "auto_reply"
    BULK = "bulk"
    SPAM = "spam"
    BOUNCE = "bounce"
    OWN_MAIL = "own_mail"


# mail that never opens, reopens or answers a ticket (bulk and spam: until an admin promotes it)
AUTOMATIC_KINDS: Final = frozenset(
    {MailKind.BOUNCE, MailKind.AUTO_REPLY, MailKind.OWN_MAIL, MailKind.BULK, MailKind.SPAM}
)
# what an admin may turn into a person's mail (``mailproc inbound promote``)
PROMOTABLE_KINDS: Final = frozenset({MailKind.BULK, MailKind.SPAM})
_RULE = re.compile(r"^\s*([!-9;-~]{1,100})\s*:\s*(.+?)\s*$")


@dataclass(frozen=True, slots=True)
class HeaderRule:
    """A header whose value (stripped, any case) matches ``pattern``: "X-Spam-Flag: ^yes$"."""

    header: str
    pattern: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> HeaderRule:
        """A rule from "Header-Name: regular expression"; ValueError when it is not one."""
        match = _RULE.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not 'Header-Name: regular expression'")
        try:
            return cls(match[1], re.compile(match[2], re.IGNORECASE))
        except re.error as error:
            raise ValueError(f"{text!r}: bad regular expression ({error})") from error

    def reason(self, message: ParsedMessage) -> str | None:
        """Why the rule matches ``message`` ("X-Spam-Flag: YES"), or None."""
        for value in message.header_values(self.header):
            if self.pattern.search(value.strip()):
                return f"{self.header}: {' '.join(value.split())[:60]}"
        return None


# what upstream spam filters write (SpamAssassin, rspamd, most gateways)
SPAM_HEADERS: Final = (r"X-Spam-Flag: ^yes\b", r"X-Spam-Status: ^yes\b")


@dataclass(frozen=True, slots=True)
class FailedRecipient:
    """A recipient a bounce reports, and whether the failure is permanent."""

    address: str
    permanent: bool


@dataclass(frozen=True, slots=True)
class BounceDetails:
    """What a bounce says: who failed, and which mail of ours (Message-ID, reply token) it was."""

    failed: tuple[FailedRecipient, ...]
    original_message_id: str | None
    reply_tokens: tuple[TokenCheck, ...]  # verified reply addresses found in the returned mail

    @property
    def permanent(self) -> tuple[str, ...]:
        """Addresses that failed permanently."""
        return tuple(f.address for f in self.failed if f.permanent)


@dataclass(frozen=True, slots=True)
class DetectPolicy:
    """What counts as our own mail (addresses, Message-ID domains, the reply-address scheme),
    and the header rules that mark spam and bulk mail beyond the built-in signals."""

    own_addresses: frozenset[str] = frozenset()
    message_id_domains: frozenset[str] = frozenset()
    reply_scheme: ReplyAddressScheme | None = None
    spam_rules: tuple[HeaderRule, ...] = tuple(HeaderRule.parse(rule) for rule in SPAM_HEADERS)
    bulk_rules: tuple[HeaderRule, ...] = ()

    def __post_init__(self) -> None:
        addresses = {normalize_address(a) for a in self.own_addresses}
        domains = {normalize_domain(d) for d in self.message_id_domains}
        if None in addresses or None in domains:
            raise ValueError("own addresses and Message-ID domains must be valid")
        object.__setattr__(self, "own_addresses", frozenset(a for a in addresses if a))
        object.__setattr__(self, "message_id_domains", frozenset(d for d in domains if d))


@dataclass(frozen=True, slots=True)
class Detection:
    """The kind of an inbound mail, the evidence for it, and bounce details for bounces.

    ``borderline`` is True when subject wording alone (no RFC 3834 header, no auto-reply
    body) made the verdict: the mail should open a ticket flagged for review when its
    sender is a known customer (see for_known_sender), and never gets an automatic reply.
    """

    kind: MailKind
    reasons: tuple[str, ...]
    bounce: BounceDetails | None = None
    borderline: bool = False

    @property
    def may_auto_reply(self) -> bool:
        """True only for mail a person surely wrote."""
        return self.kind is MailKind.HUMAN and not self.borderline


def for_known_sender(detection: Detection) -> Detection:
    """The verdict once the sender is known to be a customer: an auto-reply on subject wording
    alone becomes a person's mail, to be ticketed and flagged for review; out-of-office wording
    inside a person's subject ("I am out of the office but urgent: ...") is a person's mail."""
    if not detection.borderline:
        return detection
    if detection.kind is MailKind.AUTO_REPLY:
        note = "sender is a known customer: subject wording alone is not automatic mail; review"
        return Detection(MailKind.HUMAN, (*detection.reasons, note), borderline=True)
    if detection.kind is MailKind.HUMAN:
        note = "sender is a known customer: out-of-office wording inside a person's subject"
        return Detection(MailKind.HUMAN, (*detection.reasons, note))
    return detection


def promoted(detection: Detection) -> Detection:
    """The verdict on bulk or spam an admin promoted: a person's mail (other kinds stay)."""
    if detection.kind not in PROMOTABLE_KINDS:
        return detection
    note = f"{detection.kind.value} promoted by an admin: a person's mail"
    return Detection(MailKind.HUMAN, (*detection.reasons, note))


@dataclass(frozen=True, slots=True)
class AutoReplyBudget:
    """At most ``max_replies`` automatic replies to one sender within ``period``."""

    max_replies: int = 3
    period: dt.timedelta = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """Whether one more automatic reply to a sender is allowed now, and why."""

    allowed: bool
    reason: str


_DAEMON_LOCAL = re.compile(
    r"^(?:mailer-?daemon|mail-?daemon|postmaster|mdaemon|mail\.delivery\.system)$", re.IGNORECASE
)
_DAEMON_NAME = re.compile(
    r"^(?:mail delivery (?:system|subsystem|service)|delivery subsystem|mail administrator)$",
    re.IGNORECASE,
)
_REPLY_PREFIX = re.compile(r"^\s*(?:re|fwd?|aw|wg|rv|tr|sv|vs|enc|r|i)\s*(?:\[\d+\])?\s*:", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:\[postmaster\]\s*)?(?:undeliver(?:able|ed)|delivery\s+(?:status\s+notification"
    r"|failure|failed|report|notification|has\s+failed|problem|error)|returned\s+mail"
    r"|mail\s+delivery\s+(?:failed|failure|problem|warning)|failure\s+(?:notice|delivery)"
    r"|failed\s+mail|non[-\s]?delivery|message\s+(?:delayed|not\s+delivered|delivery\s+failure)"
    r"|delayed\s+mail|mail\s+(?:not\s+delivered|could\s+not\s+be\s+delivered|failed|error"
    r"|system\s+error)|warning:\s+(?:message|could\s+not)|permanent\s+delivery\s+failure"
    r"|processing\s+error|unzustellbar|nicht\s+zustellbar|non\s+remis|no\s+entregado"
    r"|notificaci[óo]n\s+de\s+estado\s+de\s+entrega|[ée]chec\s+de\s+(?:la\s+)?remise"
    r"|your\s+message\s+to\s+\S+\s+could\s+not\s+be\s+delivered)",
    re.IGNORECASE,
)
_BOUNCE_WORDS = re.compile(
    r"\b(?:undeliverable|delivery\s+(?:status\s+notification|failed|failure)|returned\s+mail"
    r"|non\s+remis|could\s+not\s+be\s+delivered)\b",
    re.IGNORECASE,
)
_OOF_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[\s_-]*(?:reply|response|answer)|autoreply|autoresponse|auto:"
    r"|out\s+of\s+(?:the\s+)?office|away\s+from\s+(?:the\s+)?office|vacation\s+(?:reply|notice)"
    r"|respuesta\s+autom[áa]tica|fuera\s+de\s+(?:la\s+)?oficina|aviso\s+de\s+ausencia"
    r"|r[ée]ponse\s+automatique|absente?\s+du\s+bureau|absence\s+du\s+bureau|message\s+d'absence"
    r"|automatische\s+antwort|abwesenheitsnotiz|nicht\s+im\s+b[üu]ro|au[ßs]er\s+haus)"
    r"|\b(?:is|am|are|est|estoy|est[áa]|ist|bin)\s+(?:currently\s+|actuellement\s+)?(?:out\s+of"
    r"\s+(?:the\s+)?office|absente?\s+(?:du\s+bureau|jusqu)|fuera\s+de\s+la\s+oficina"
    r"|de\s+vacaciones|en\s+cong[ée]s?|nicht\s+im\s+b[üu]ro|im\s+urlaub|abwesend)",
    re.IGNORECASE,
)
# What follows the phrase in an auto-responder's subject: a colon, "until …", or nothing.
_OOF_ENDING = re.compile(
    r"\s*(?:$|:|[-–(]?\s*(?:until|till|through|from|back|returning|hasta|desde|del|jusqu|du\b"
    r"|au\b|bis|vom|ab\b|zur[üu]ck|\d))",
    re.IGNORECASE,
)
# Auto-responder wording in the body (en/es/fr/de), looked for when the subject hints at one.
_AUTO_BODY = re.compile(
    r"\b(?:(?:i\s+am|i'm|i\s+will\s+be)\s+(?:currently\s+)?(?:out\s+of\s+(?:the\s+)?office"
    r"|away|on\s+(?:vacation|holiday|leave|annual\s+leave))|limited\s+access\s+to\s+(?:my\s+)?"
    r"e-?mail|(?:will|shall)\s+(?:be\s+back|return)\s+(?:on|to\s+the\s+office)|this\s+is\s+an"
    r"\s+automat(?:ic|ed)\s+(?:reply|response|message)|estoy\s+(?:fuera\s+de\s+la\s+oficina"
    r"|de\s+vacaciones)|acceso\s+limitado|je\s+suis\s+(?:actuellement\s+)?(?:absente?|en\s+cong[ée]s?)"
    r"|ceci\s+est\s+une\s+r[ée]ponse\s+automatique|ich\s+bin\s+(?:bis|vom|ab|derzeit|zurzeit"
    r"|nicht\s+im\s+b[üu]ro|im\s+urlaub)|diese\s+nachricht\s+wurde\s+automatisch)",
    re.IGNORECASE,
)
_MAX_BODY_SCAN = 2000
_SUBJECT_ONLY = "subject wording only (no RFC 3834 header, no auto-reply body): borderline"
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Response-Suppress")
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
_NO_REPLY = re.compile(r"^(?:no-?reply|do-?not-?reply|noreply-[\w.-]+)$|-noreply$", re.IGNORECASE)
_LIST_HEADERS = ("List-Id", "List-Unsubscribe")
_DELAY = re.compile(r"\b(?:delay(?:ed)?|will\s+(?:be\s+)?retr(?:y|ied)|warning)\b", re.IGNORECASE)
_FAILED_BLOCK = re.compile(
    r"^[\s-]*failed\s+recipients?[\s-]*:?\s*$((?:\s*^\s*<?[^\s<>@]+@[^\s<>]+>?\s*$)+)",
    re.IGNORECASE | re.MULTILINE,
)
_ADDRESS = re.compile(r"[^\s<>@]+@[^\s<>]+")
_MESSAGE_ID_LINE = re.compile(r"^message-id:\s*(\S.*)$", re.IGNORECASE | re.MULTILINE)
_MAX_PARTS = 64
_MAX_SCAN_CHARS = 200_000


def detect(
    message: ParsedMessage, policy: DetectPolicy, envelope_sender: str | None = None
) -> Detection:
    """Classify one inbound mail; ``envelope_sender`` is MAIL FROM ('' for the null sender)."""
    own = _own_mail_reasons(message, policy)
    if own:
        return Detection(MailKind.OWN_MAIL, own)
    spam = _rule_reasons(message, policy.spam_rules)
    if spam:
        return Detection(MailKind.SPAM, tuple(f"marked as spam upstream ({r})" for r in spam))
    types = frozenset(part.get_content_type() for part in _parts(message))
    strong, weak = _bounce_evidence(message, types, envelope_sender)
    automatic = _auto_reply_reasons(message, types)
    wording = _oof_subject(message.subject)
    subject = (f"out-of-office subject {message.subject[:80]!r}",) if wording else ()
    if strong or (weak and not (automatic or subject)):
        details = bounce_details(message, policy.reply_scheme)
        if strong or details.failed:
            found = f"{len(details.failed)} failed recipient(s) found"
            return Detection(MailKind.BOUNCE, (*strong, *weak, found), details)
    body = _AUTO_BODY.search(message.body_text[:_MAX_BODY_SCAN]) if wording else None
    if automatic or body:
        found_body = (f"auto-reply wording in the body ({body[0][:60]!r})",) if body else ()
        return Detection(MailKind.AUTO_REPLY, (*automatic, *subject, *found_body))
    if wording == "strong":
        return Detection(MailKind.AUTO_REPLY, (*subject, _SUBJECT_ONLY), borderline=True)
    bulk = (*_bulk_reasons(message), *_rule_reasons(message, policy.bulk_rules))
    if bulk:
        return Detection(MailKind.BULK, bulk, borderline=bool(wording))
    if _is_null(_return_path(message, envelope_sender)):
        return Detection(MailKind.AUTO_REPLY, ("null return path: automatic mail (RFC 3834)",))
    if wording:
        return Detection(MailKind.HUMAN, (*subject, _SUBJECT_ONLY), borderline=True)
    return Detection(MailKind.HUMAN, ("no automatic-mail signal",))


def _own_mail_reasons(message: ParsedMessage, policy: DetectPolicy) -> tuple[str, ...]:
    """Why this looks like our own mail coming back (empty when it does not)."""
    reasons = []
    for sender in message.from_:
        address = normalize_address(sender.addr)
        scheme = policy.reply_scheme
        if address and (address in policy.own_addresses or (scheme and scheme.owns(address))):
            reasons.append(f"From is our own address {address}")
    domain = (message.message_id or "").rpartition("@")[2].lower()
    if domain and domain in policy.message_id_domains:
        reasons.append(f"Message-ID is from our domain {domain}")
    return tuple(reasons)


def _return_path(message: ParsedMessage, envelope_sender: str | None) -> str | None:
    """The envelope sender if known, else the topmost Return-Path header."""
    if envelope_sender is not None:
        return envelope_sender
    values = message.header_values("Return-Path")
    return values[0] if values else None


def _is_null(return_path: str | None) -> bool:
    return return_path is not None and return_path.strip().strip("<>").strip() == ""


def _rule_reasons(message: ParsedMessage, rules: Sequence[HeaderRule]) -> tuple[str, ...]:
    """The reasons of the header rules that match."""
    return tuple(reason for rule in rules if (reason := rule.reason(message)) is not None)


def _bounce_evidence(
    message: ParsedMessage, types: frozenset[str], envelope_sender: str | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(strong, weak) signs of a non-delivery report; ``types`` are the MIME part types."""
    strong, weak = [], []
    if "message/delivery-status" in types or (
        message.content_type == "multipart/report"
        and ("delivery-status" in (_report_type(message) or ""))
    ):
        strong.append("delivery status notification (RFC 3464)")
    if message.header_values("X-Failed-Recipients"):
        strong.append("X-Failed-Recipients header")
    sender = message.sender
    if sender is not None and (
        _DAEMON_LOCAL.match(sender.addr.partition("@")[0]) or _DAEMON_NAME.match(sender.name)
    ):
        strong.append(f"From is a mail system ({sender})")
    if not message.from_:
        weak.append("no From address")
    return_path = _return_path(message, envelope_sender)
    if _is_null(return_path):
        weak.append("null return path")
    elif return_path and _DAEMON_LOCAL.match(return_path.strip("<> ").partition("@")[0]):
        weak.append(f"return path is a mail system ({return_path.strip()})")
    subject = message.subject
    returned = "message/rfc822" in types or "text/rfc822-headers" in types
    if _BOUNCE_SUBJECT.match(subject) and returned:
        strong.append(f"bounce subject {subject[:80]!r} with the returned original")
    elif _BOUNCE_SUBJECT.match(subject) or _BOUNCE_WORDS.search(subject):
        weak.append(f"bounce subject {subject[:80]!r}")
    return tuple(strong), tuple(weak)


def _report_type(message: ParsedMessage) -> str | None:
    if message.mime is None:
        return None
    value = message.mime.get_param("report-type")
    return value.lower() if isinstance(value, str) else None


def _parts(message: ParsedMessage) -> Iterator[Message]:
    """The MIME parts of a message, at most _MAX_PARTS of them."""
    if message.mime is None:
        return
    for count, part in enumerate(message.mime.walk()):
        if count >= _MAX_PARTS:
            return
        yield part


def _auto_reply_reasons(message: ParsedMessage, types: frozenset[str]) -> tuple[str, ...]:
    """Why this is an automatic reply (RFC 3834 and common vendor signals)."""
    reasons = []
    for value in message.header_values("Auto-Submitted"):
        if value.split("(")[0].strip().lower() not in ("", "no"):
            reasons.append(f"Auto-Submitted: {value.strip()[:40]}")
    reasons += [f"{name} header" for name in _AUTO_HEADERS if message.header_values(name)]
    for name in ("Precedence", "X-Precedence"):
        if any(v.strip().lower() == "auto_reply" for v in message.header_values(name)):
            reasons.append(f"{name}: auto_reply")
    if any("autorespon" in v.lower() for v in message.header_values("X-POST-MessageClass")):
        reasons.append("X-POST-MessageClass: autoresponder")
    if "message/disposition-notification" in types:
        reasons.append("read receipt (message disposition notification)")
    return tuple(reasons)


def _oof_subject(subject: str) -> str | None:
    """ "strong" for an out-of-office subject as auto-responders write it (the phrase then a
    colon, "until …", or nothing more), "weak" for the wording inside other text, else None."""
    if _REPLY_PREFIX.match(subject):
        return None
    match = _OOF_SUBJECT.search(subject)
    if match is None:
        return None
    return "strong" if _OOF_ENDING.match(subject, match.end()) else "weak"


def _bulk_reasons(message: ParsedMessage) -> tuple[str, ...]:
    """Why this is list or bulk mail."""
    reasons = [
        f"Precedence: {value.strip().lower()}"
        for value in message.header_values("Precedence")
        if value.strip().lower() in _BULK_PRECEDENCE
    ]
    reasons += [f"{name} header" for name in _LIST_HEADERS if message.header_values(name)]
    sender = message.sender
    if sender is not None and _NO_REPLY.search(sender.addr.partition("@")[0]):
        reasons.append(f"From is a no-reply address ({sender.addr})")
    return tuple(reasons)


def bounce_details(message: ParsedMessage, scheme: ReplyAddressScheme | None) -> BounceDetails:
    """Failed recipients, the returned original's Message-ID and verified reply tokens."""
    text = _report_text(message)
    failed = _failed_recipients(message, text)
    original = next(
        (
            found
            for match in _MESSAGE_ID_LINE.finditer(text)
            if (found := bare_message_id(match[1])) and found != message.message_id
        ),
        None,
    )
    tokens = tuple(t for t in find_reply_addresses(scheme, text) if t.valid) if scheme else ()
    return BounceDetails(failed, original, tokens)


def _report_text(message: ParsedMessage) -> str:
    """Text of a report's parts plus the headers of any returned message, bounded in size."""
    chunks: list[str] = []
    size = 0
    for part in _parts(message):
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                chunk = "\n".join(f"{k}: {v}" for k, v in inner.items())
            else:
                continue
        elif part.get_content_maintype() == "text" or content_type in (
            "message/delivery-status",
            "text/rfc822-headers",
        ):
            chunk = decode_text_part(part, [])
        else:
            continue
        chunks.append(chunk[: _MAX_SCAN_CHARS - size])
        size += len(chunks[-1])
        if size >= _MAX_SCAN_CHARS:
            break
    return "\n".join(chunks)


def _failed_recipients(message: ParsedMessage, text: str) -> tuple[FailedRecipient, ...]:
    """Failed recipients: flufl.bounce's detectors, then the X-Failed-Recipients header,
    then a "Failed Recipients" block (WebShield and similar gateways)."""
    temporary: list[str] = []
    permanent: list[str] = []
    if message.mime is not None:
        try:
            found_temporary, found_permanent = all_failures(message.mime)
        except Exception:  # third-party heuristics on hostile input: fall back below
            found_temporary, found_permanent = frozenset(), frozenset()
        temporary = [_text(a) for a in found_temporary]
        permanent = [_text(a) for a in found_permanent]
    if not temporary and not permanent:
        for value in message.header_values("X-Failed-Recipients"):
            permanent += _ADDRESS.findall(value)
    if not temporary and not permanent:
        block = _FAILED_BLOCK.search(text)
        if block:
            delayed = _DELAY.search(message.subject) is not None
            (temporary if delayed else permanent).extend(_ADDRESS.findall(block[1]))
    result: dict[str, FailedRecipient] = {}
    for permanent_failure, addresses in ((True, permanent), (False, temporary)):
        for address in addresses:
            normalized = normalize_address(address)
            if normalized:
                result.setdefault(normalized, FailedRecipient(normalized, permanent_failure))
    return tuple(result.values())


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def check_auto_reply_budget(
    sent_at: Sequence[dt.datetime], now: dt.datetime, budget: AutoReplyBudget
) -> BudgetDecision:
    """Allow one more automatic reply to a sender unless ``budget`` is spent within its period."""
    since = now - budget.period
    recent = sum(1 for moment in sent_at if since < moment <= now)
    if recent >= budget.max_replies:
        return BudgetDecision(
            False,
            f"suppressed: {recent} automatic replies to this sender in the last {budget.period}"
            f" (limit {budget.max_replies})",
        )
    return BudgetDecision(True, f"allowed: {recent} of {budget.max_replies} in {budget.period}")
