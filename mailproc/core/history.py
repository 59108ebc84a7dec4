"""The received time of an old message imported as history: its own Date within sane bounds,
else the time the receiving server stamped (the topmost Received header), else the import."""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from mailproc.core.parse import utc_date
from mailproc.core.rawmail import header_start, split_header_block

EARLIEST: Final = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
MAX_AHEAD: Final = dt.timedelta(days=1)  # a sender's clock ahead of the server's (or of now)
MAX_TRANSIT: Final = dt.timedelta(days=30)  # a Date this far before its Received is a bad clock
_DATE = re.compile(rb"^date:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.I | re.M)
_RECEIVED = re.compile(rb"^received:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.I | re.M)


def history_time(raw: bytes, imported: dt.datetime) -> tuple[dt.datetime, str]:
    """(received time, why) of a message imported at ``imported`` (an aware UTC time)."""
    start = header_start(raw)
    header, _ = split_header_block(raw[start[0] :] if start else raw)
    latest = imported + MAX_AHEAD
    received_match = _RECEIVED.search(header)
    received = _parse(received_match[1].rpartition(b";")[2]) if received_match is not None else None
    if received is not None and not EARLIEST <= received <= latest:
        received = None
    date_match = _DATE.search(header)
    date = _parse(date_match[1]) if date_match is not None else None
    if date is not None:
        upper = (received or imported) + MAX_AHEAD
        lower = max(EARLIEST, received - MAX_TRANSIT) if received is not None else EARLIEST
        if lower <= date <= upper:
            return min(date, imported), "the message's Date"
        why = f"Date {date.isoformat()} out of bounds"
    else:
        why = "no usable Date"
    if received is not None:
        return min(received, imported), f"{why}: the topmost Received time"
    return imported, f"{why} and no usable Received time: the time of the import"


def _parse(value: bytes) -> dt.datetime | None:
    """A header's RFC 5322 date-time (folded, raw bytes) as aware UTC, or None."""
    return utc_date(" ".join(value.decode("ascii", "replace").split()))
