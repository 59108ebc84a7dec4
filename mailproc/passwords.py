"""Dashboard password hashes: scrypt (RFC 7914) from the standard library, constant-time checks.

Format: ``scrypt$<log2 n>$<r>$<p>$<salt, base64>$<key, base64>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_LOG2_N, _R, _P, _KEY_BYTES = 15, 8, 1, 32
_MAXMEM = 128 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """A new salted scrypt hash of ``password``."""
    salt = secrets.token_bytes(16)
    key = _derive(password, salt, _LOG2_N, _R, _P)
    return f"scrypt${_LOG2_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def _derive(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=2**log2_n, r=r, p=p, maxmem=_MAXMEM, dklen=_KEY_BYTES
    )


def _parse(hashed: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = hashed.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except ValueError:
        return None
    if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and salt and key):
        return None
    return log2_n, r, p, salt, key


def is_password_hash(hashed: str) -> bool:
    """Whether ``hashed`` is a hash this module can check."""
    return _parse(hashed) is not None


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches ``hashed`` (constant-time comparison of the keys)."""
    parsed = _parse(hashed)
    if parsed is None:
        return False
    log2_n, r, p, salt, key = parsed
    return hmac.compare_digest(_derive(password, salt, log2_n, r, p), key)
