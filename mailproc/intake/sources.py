"""Read raw mail from files: single .eml files, Maildir folders, mbox files, or stdin."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mailproc.core.rawmail import is_mbox_from_line, not_mail_reason, strip_mbox_from_line
from mailproc.intake.store import Envelope


@dataclass(frozen=True, slots=True)
class RawInput:
    """One candidate message read from disk or stdin; ``error`` says why it is not mail."""

    raw: bytes
    envelope: Envelope
    error: str | None = None


def read_stdin(stream: BinaryIO) -> RawInput:
    """One message piped in by an MTA; a leading mbox ``From`` line gives the sender."""
    raw, sender = strip_mbox_from_line(stream.read())
    return _checked(raw, Envelope(source="stdin", mail_from=sender))


def read_path(path: Path) -> Iterator[RawInput]:
    """Every message under ``path``: a Maildir, a folder of files, an mbox or one message."""
    if path.is_dir():
        if (path / "cur").is_dir() or (path / "new").is_dir():
            yield from _read_maildir(path)
        else:
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                yield from _read_file(child)
    else:
        yield from _read_file(path)


def _read_maildir(path: Path) -> Iterator[RawInput]:
    for sub in ("new", "cur"):
        folder = path / sub
        if not folder.is_dir():
            continue
        for child in sorted(p for p in folder.iterdir() if p.is_file()):
            yield _checked(child.read_bytes(), Envelope(source="maildir", source_ref=str(child)))


def _read_file(path: Path) -> Iterator[RawInput]:
    raw = path.read_bytes()
    if is_mbox_from_line(raw) and _looks_like_mbox(raw):
        box = mailbox.mbox(str(path), create=False)
        try:
            for key in box.iterkeys():
                entry = box.get_message(key)
                sender = entry.get_from().split(" ", 1)[0] or None
                envelope = Envelope(
                    source="mbox",
                    source_ref=f"{path}#{key}",
                    mail_from=None if sender == "MAILER-DAEMON" else sender,
                )
                yield _checked(box.get_bytes(key), envelope)
        finally:
            box.close()
        return
    raw, sender = strip_mbox_from_line(raw)
    yield _checked(raw, Envelope(source="file", source_ref=str(path), mail_from=sender))


def _looks_like_mbox(raw: bytes) -> bool:
    """A file that starts with a ``From`` line and holds more than one message."""
    return b"\nFrom " in raw


def _checked(raw: bytes, envelope: Envelope) -> RawInput:
    return RawInput(raw=raw, envelope=envelope, error=not_mail_reason(raw))
