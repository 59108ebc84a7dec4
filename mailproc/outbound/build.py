"""Building deferred mail: render and compose a stored template context, keep the bytes.

No network; ``build`` touches no database, ``store_built`` writes in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mailproc.core.parse import MEMOIZING_POLICY
from mailproc.outbound.compose import Envelope, tag_subject
from mailproc.outbound.contexts import TEMPLATES
from mailproc.outbound.render import Renderer, RenderError
from mailproc.outbound.wire import compose_bytes
from mailproc.store.models import Blob, MessageRecord, Outbox
from mailproc.store.staged import table_of

_OUTBOX: Final = table_of(Outbox)
_MESSAGES: Final = table_of(MessageRecord)


def context_adapter(template: str) -> TypeAdapter[Any]:
    """The JSON (de)serializer of a template's context, built on first use."""
    if template not in _ADAPTERS:
        _ADAPTERS[template] = TypeAdapter(TEMPLATES[template])
    return _ADAPTERS[template]


_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


ENVELOPE: Final = TypeAdapter(Envelope)


@dataclass(frozen=True, slots=True)
class BuiltMail:
    """A deferred mail rendered and composed: its bytes (CRLF) and its thread record's text."""

    raw: bytes
    subject: str
    text: str


def build(
    outbox_id: int,
    template: str,
    locale: str,
    context: dict[str, Any] | None,
    envelope: dict[str, Any] | None,
    renderer: Renderer,
    files: Mapping[str, bytes] | None = None,
) -> BuiltMail:
    """Render and compose a stored template context; no database (the bytes of the mail's
    attachments come in ``files``, by hash: see ``attachment_files``).

    The same stored row always gives the same bytes (the Date, the Message-ID and the MIME
    boundary come from the row). Raises RenderError or HeaderError (permanent) when the mail
    cannot be built.
    """
    if context is None or envelope is None or template not in TEMPLATES:
        raise RenderError(f"outbox {outbox_id} has neither bytes nor a template context")
    try:
        typed = context_adapter(template).validate_python(context)
        addressed = ENVELOPE.validate_python(envelope)
    except ValidationError as error:
        raise RenderError(f"stored context no longer fits {template}: {error}") from error
    mail = renderer.render(typed, locale)
    raw = compose_bytes(mail, addressed, files=files)
    return BuiltMail(
        raw, thread_subject(tag_subject(mail.subject, addressed.ticket_number)), mail.text
    )


def thread_subject(subject: str) -> str:
    """The subject as a mail program shows it (encoded words decoded), for the thread record.

    Printable text without an encoded word reads as written; only other text is parsed (a
    hundred microseconds a subject). tests/outbound/test_compose.py checks both agree.
    """
    if subject.isprintable() and "=?" not in subject:
        return subject
    _, parsed = MEMOIZING_POLICY.header_store_parse("Subject", subject)
    return str(parsed)


def attachment_files(
    session: Session, envelopes: Iterable[dict[str, Any] | None]
) -> dict[str, bytes]:
    """The stored bytes of every attachment these stored envelopes name, by hash (one query)."""
    hashes = {
        attachment["sha256"]
        for envelope in envelopes
        if envelope
        for attachment in envelope.get("attachments") or ()
    }
    if not hashes:
        return {}
    found = session.execute(select(Blob.sha256, Blob.data).where(Blob.sha256.in_(sorted(hashes))))
    return {sha256: data for sha256, data in found}


def store_built(session: Session, built: Mapping[str, BuiltMail]) -> None:
    """Keep built mail (by Message-ID) on rows not built before, and complete their thread
    records: one statement each for any number of mails."""
    if not built:
        return
    session.connection().execute(
        _OUTBOX.update()
        .where(_OUTBOX.c.message_id == bindparam("mid"), _OUTBOX.c.raw.is_(None))
        .values(raw=bindparam("built_raw")),
        [{"mid": mid, "built_raw": mail.raw} for mid, mail in built.items()],
    )
    complete_thread_records(session, built)


def complete_thread_records(session: Session, built: Mapping[str, BuiltMail]) -> None:
    """Give built mail's thread records (by Message-ID) their subject and text."""
    if not built:
        return
    session.connection().execute(
        _MESSAGES.update()
        .where(_MESSAGES.c.message_id == bindparam("mid"), _MESSAGES.c.direction == "out")
        .values(
            subject=bindparam("built_subject"),
            body_text=bindparam("built_text"),
            new_text=bindparam("built_text"),
            body_source="plain",
        ),
        [
            {"mid": mid, "built_subject": mail.subject, "built_text": mail.text}
            for mid, mail in built.items()
        ],
    )
