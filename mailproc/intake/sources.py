"""Read raw mail from files: single .eml files, Maildir folders, mbox files, or stdin."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mailproc.core.history import history_time
from mailproc.core.rawmail import is_mbox, not_mail_reason, split_mbox, strip_mbox_from_line
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


def in_history_order(inputs: Iterable[RawInput], imported: dt.datetime) -> Iterator[RawInput]:
    """History mail timed by core/history.py, given back oldest first (ties in reading order),
    so that an answer is stored, hence processed, after the mail it answers.

    Memory stays bounded: the bytes wait in an unnamed temporary spool file while only the
    sort keys (time, reading index, spool offset, size, envelope) are kept; each message is
    read back from the spool when its turn comes. Mail that is not mail is given back at once.
    """
    keys: list[tuple[dt.datetime, int, int, int, Envelope]] = []
    with tempfile.TemporaryFile() as spool:
        for item in inputs:
            if item.error is not None:
                yield item
                continue
            when, _ = history_time(item.raw, imported)
            envelope = dataclasses.replace(item.envelope, history=True, received_at=when)
            keys.append((when, len(keys), spool.tell(), len(item.raw), envelope))
            spool.write(item.raw)
        keys.sort(key=lambda key: key[:2])
        for _, _, offset, size, envelope in keys:
            spool.seek(offset)
            yield RawInput(raw=spool.read(size), envelope=envelope)


def _read_maildir(path: Path) -> Iterator[RawInput]:
    for sub in ("new", "cur"):
        folder = path / sub
        if not folder.is_dir():
            continue
        for child in sorted(p for p in folder.iterdir() if p.is_file()):
            yield _checked(child.read_bytes(), Envelope(source="maildir", source_ref=str(child)))


def _read_file(path: Path) -> Iterator[RawInput]:
    """An mbox file's messages, or the file as one message stored byte for byte."""
    raw = path.read_bytes()
    if is_mbox(raw, path.name):
        for key, (message, sender) in enumerate(split_mbox(raw)):
            envelope = Envelope(source="mbox", source_ref=f"{path}#{key}", mail_from=sender)
            yield _checked(message, envelope)
        return
    _, sender = strip_mbox_from_line(raw)  # a leading "From " line gives the sender
    yield _checked(raw, Envelope(source="file", source_ref=str(path), mail_from=sender))


def _checked(raw: bytes, envelope: Envelope) -> RawInput:
    return RawInput(raw=raw, envelope=envelope, error=not_mail_reason(raw))
