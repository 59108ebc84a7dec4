"""One error hierarchy: transient failures (retry later) kept apart from permanent ones."""

from __future__ import annotations


class MailprocError(Exception):
    """Base of every error mailproc raises on purpose."""


class TransientError(MailprocError):
    """Retrying later may succeed: database down or locked, relay unreachable."""


class PermanentError(MailprocError):
    """Retrying will not help: bad input, bad configuration, refused by policy."""


class NotMailError(PermanentError):
    """Input that is not an RFC 5322 message at all (empty, binary junk)."""


class NotFoundError(PermanentError):
    """An id, number or name given by the user matches nothing stored."""
