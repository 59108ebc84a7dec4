"""IMAP commands the poller needs beyond imap-tools: raw fetch without \\Seen, sizes, UID
sets, IDLE responses, UIDVALIDITY and a quiet logout.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import select
import ssl
from collections.abc import Sequence

from imap_tools import BaseMailBox
from imap_tools.consts import UID_PATTERN
from imap_tools.errors import ImapToolsError, MailboxFetchError
from imap_tools.utils import check_command_status

_UID_IN_FETCH = re.compile(r"\bUID (\d+)", re.IGNORECASE)
_SIZE_IN_FETCH = re.compile(r"\bRFC822\.SIZE (\d+)", re.IGNORECASE)
NETWORK_ERRORS = (OSError, imaplib.IMAP4.error, ImapToolsError)


def uidvalidity_of(box: BaseMailBox) -> int:
    """The UIDVALIDITY the SELECT just reported."""
    _, data = box.client.response("UIDVALIDITY")
    if not data or data[0] is None:
        raise imaplib.IMAP4.error("the server reported no UIDVALIDITY")
    return int(data[-1])


def fetch_raw(box: BaseMailBox, uids: Sequence[int]) -> dict[int, bytes]:
    """Raw bytes by UID, without setting \\Seen (BODY.PEEK); vanished messages are absent."""
    if not uids:
        return {}
    response = box.client.uid("FETCH", uid_set(uids), "(UID BODY.PEEK[])")
    check_command_status(response, MailboxFetchError)
    items = response[1]
    found: dict[int, bytes] = {}
    for index, item in enumerate(items):
        if not isinstance(item, tuple):
            continue
        # The UID comes before the literal on most servers and after it on some.
        following = items[index + 1] if index + 1 < len(items) else b""
        for text in (item[0], following if isinstance(following, bytes) else b""):
            match = UID_PATTERN.search(text.decode("ascii", "replace"))
            if match:
                found[int(match.group("uid"))] = item[1]
                break
    return found


def announced(box: BaseMailBox) -> bool:
    """Whether an EXISTS response came with an earlier reply (and forget it)."""
    return box.client.untagged_responses.pop("EXISTS", None) is not None


def fetch_batches(
    uids: Sequence[int], sizes: dict[int, int], max_count: int, max_bytes: int
) -> list[list[int]]:
    """UIDs cut into fetch batches of at most ``max_count`` messages and ``max_bytes`` (a
    message larger than ``max_bytes`` is a batch of its own)."""
    batches: list[list[int]] = []
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (len(batch) >= max_count or total + size > max_bytes):
            batches.append(batch)
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        batches.append(batch)
    return batches


def fetch_sizes(box: BaseMailBox, uids: Sequence[int]) -> dict[int, int]:
    """RFC822.SIZE by UID (one command for the folder; bounds what a batch holds in memory)."""
    response = box.client.uid("FETCH", uid_set(uids), "(RFC822.SIZE)")
    check_command_status(response, MailboxFetchError)
    sizes: dict[int, int] = {}
    for line in response[1]:
        text = line.decode("ascii", "replace") if isinstance(line, bytes) else ""
        uid, size = _UID_IN_FETCH.search(text), _SIZE_IN_FETCH.search(text)
        if uid and size:
            sizes[int(uid.group(1))] = int(size.group(1))
    return sizes


def uid_set(uids: Sequence[int]) -> str:
    """An IMAP UID set with runs collapsed: ``1:3,7,9:10``."""
    ranges: list[list[int]] = []
    for uid in sorted(uids):
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1][1] = uid
        else:
            ranges.append([uid, uid])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in ranges)


def readable(box: BaseMailBox, timeout: float) -> bool:
    sock = box.client.sock
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    return bool(select.select([sock], [], [], timeout)[0])


def new_mail(line: bytes) -> bool:
    """Whether an IDLE response line announces mail; a closed connection raises."""
    if not line:
        raise ConnectionError("the IMAP server closed the connection")
    if line.startswith(b"* BYE"):
        raise ConnectionError(f"the IMAP server said {line.strip().decode('ascii', 'replace')}")
    return line.rstrip().endswith(b"EXISTS")


def close_quietly(box: BaseMailBox) -> None:
    """Log out, or at least drop the connection; errors here change nothing."""
    with contextlib.suppress(*NETWORK_ERRORS):
        box.logout()
        return
    with contextlib.suppress(*NETWORK_ERRORS):
        box.client.shutdown()
