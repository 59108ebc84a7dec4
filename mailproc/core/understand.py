"""The pure first step of processing: parse, detect automatic mail, split off quoted history,
guess the language and classify (priority, intent, error codes).

Everything here depends only on the raw bytes and fixed policies, so it can run in a separate
process (see ``mailproc.processing.parsepool``) while the database work of another batch goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from mailproc.core.classify import Classification, Classifier
from mailproc.core.detect import AUTOMATIC_KINDS, Detection, DetectPolicy, detect
from mailproc.core.limits import IntakeLimits
from mailproc.core.locale_policy import LanguageGuess, guess_language
from mailproc.core.model import ParsedMessage
from mailproc.core.parse import parse_message
from mailproc.core.quotes import split_reply


@dataclass(frozen=True)
class PrepareRules:
    """The fixed policies the first step applies: size limits, detection, classification."""

    limits: IntakeLimits
    detection: DetectPolicy
    classifier: Classifier


@dataclass(frozen=True)
class Prepared:
    """One message understood without any lookup; ``parsed.mime`` is dropped (not needed after).

    ``read_text`` is what every later step reads (commands, a survey score, the text relayed,
    alerts, a new ticket's mail): ``new_text``, or a reduced message's first
    ``max_understood_chars`` characters, so that no step in the write transaction scans a
    huge text. ``new_text`` is what is stored.
    """

    parsed: ParsedMessage
    fingerprint: str
    detection: Detection
    new_text: str
    quoted_text: str
    language: LanguageGuess | None  # of new_text, for the reply's locale
    classification: Classification | None  # None for automatic mail, which opens no ticket
    read_text: str  # new_text as far as it is read: all of it, or a reduced mail's budget
    reduced: bool = False  # over the understanding budget: no quote split (a defect says so)


def prepare(raw: bytes, rules: PrepareRules, envelope_sender: str | None) -> Prepared:
    """Parse, detect and classify one raw message; raises LimitExceeded for oversized mail."""
    parsed = parse_message(raw, rules.limits)
    detection = detect(parsed, rules.detection, envelope_sender)
    budget = rules.limits.max_understood_chars
    reduced = len(parsed.body_text) > budget
    if reduced:
        # Reduced form: stored and ticketed whole, read (quote split, language, rules) no further.
        defect = (
            f"body text of {len(parsed.body_text)} characters is over the understanding budget"
            f" of {budget}: no quote split, classified on its first {budget} characters"
        )
        new_text, quoted_text, read = parsed.body_text, "", parsed.body_text[:budget]
        parsed = dataclasses.replace(parsed, defects=(*parsed.defects, defect))
    else:
        new_text, quoted_text = reply_text(parsed)
        read = new_text
    automatic = detection.kind in AUTOMATIC_KINDS
    return Prepared(
        parsed=dataclasses.replace(parsed, mime=None),
        fingerprint=content_hash(parsed),
        detection=detection,
        new_text=new_text,
        quoted_text=quoted_text,
        language=guess_language(read),
        classification=None if automatic else rules.classifier.classify(parsed.subject, read),
        read_text=read,
        reduced=reduced,
    )


def content_hash(parsed: ParsedMessage) -> str:
    """Fingerprint of what a reader sees: sender, subject and body text."""
    sender = parsed.sender.addr.lower() if parsed.sender else ""
    text = "\x00".join((sender, parsed.subject, " ".join(parsed.body_text.split())))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def reply_text(parsed: ParsedMessage) -> tuple[str, str]:
    """The new text of a mail (what agents and the classifier read) and the rest."""
    parts = split_reply(parsed.body_text, parsed.sender.name if parsed.sender else None)
    rest = "\n\n".join(part for part in (parts.signature, parts.quoted) if part)
    return (parts.new_text or parsed.body_text), rest
