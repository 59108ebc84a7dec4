"""Size limits checked on raw bytes before any parsing (message, header block, MIME depth,
parts), and the understanding budget: how much body text is quote-split and classified."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailproc.core.rawmail import split_header_block

_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    """The largest message the processor agrees to parse."""

    max_message_bytes: int = 25 * 1024 * 1024
    max_header_bytes: int = 256 * 1024
    max_mime_depth: int = 12
    max_parts: int = 250
    max_understood_chars: int = 256 * 1024  # body text quote-split and classified in full


@dataclass(frozen=True, slots=True)
class MimeShape:
    """What a cheap scan of delimiter lines tells about a message's MIME tree."""

    depth: int
    parts: int


class LimitExceeded(ValueError):
    """A raw message is larger or deeper than the configured limits (permanent)."""


def scan_mime_shape(raw: bytes) -> MimeShape:
    """Estimate MIME nesting depth and part count from boundary delimiter lines.

    Only boundaries declared somewhere in the message count, so body text that happens to
    start with ``--`` is ignored. The scan is linear and never recurses.
    """
    boundaries = {quoted or bare for quoted, bare in _BOUNDARY.findall(raw)}
    if not boundaries:
        return MimeShape(depth=0, parts=1)
    stack: list[bytes] = []
    depth = parts = 0
    for line in raw.split(b"\n"):
        if not line.startswith(b"--"):
            continue
        token = line[2:].rstrip()
        if token.endswith(b"--") and token[:-2] in boundaries:
            closing = token[:-2]
            if closing in stack:
                del stack[stack.index(closing) :]
        elif token in boundaries:
            parts += 1
            if token in stack:
                del stack[stack.index(token) + 1 :]
            else:
                stack.append(token)
                depth = max(depth, len(stack))
    return MimeShape(depth=depth, parts=max(parts, 1))


def check_limits(raw: bytes, limits: IntakeLimits) -> None:
    """Raise LimitExceeded with a reason when ``raw`` breaks one of ``limits``."""
    if len(raw) > limits.max_message_bytes:
        raise LimitExceeded(f"message is {len(raw)} bytes; the limit is {limits.max_message_bytes}")
    header, _ = split_header_block(raw)
    if len(header) > limits.max_header_bytes:
        raise LimitExceeded(
            f"header block is {len(header)} bytes; the limit is {limits.max_header_bytes}"
        )
    shape = scan_mime_shape(raw)
    if shape.depth > limits.max_mime_depth:
        raise LimitExceeded(
            f"MIME nesting depth is {shape.depth}; the limit is {limits.max_mime_depth}"
        )
    if shape.parts > limits.max_parts:
        raise LimitExceeded(
            f"message has {shape.parts} MIME parts; the limit is {limits.max_parts}"
        )
