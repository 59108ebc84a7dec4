"""Reply tokens: per-ticket HMAC reply addresses (``support+<ticket>-<token>@domain``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from mailproc.core.addresses import normalize_address, normalize_domain

TOKEN_LENGTH = 16  # base32 characters: 80 bits, far beyond online guessing
_MAX_TICKET_DIGITS = 12


@dataclass(frozen=True, slots=True)
class ReplyAddressScheme:
    """Where replies go and the secrets that sign them; the first secret signs, all verify."""

    local_part: str
    domain: str
    secrets: tuple[bytes, ...] = field(repr=False)
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        domain = normalize_domain(self.domain)
        if domain is None or normalize_address(f"{self.local_part}@{domain}") is None:
            raise ValueError(f"invalid reply address {self.local_part}@{self.domain}")
        if not self.secrets or any(len(secret) < 16 for secret in self.secrets):
            raise ValueError("reply-token secrets must be at least 16 bytes each")
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "local_part", self.local_part.lower())
        pattern = (
            rf"(?<![\w.+-]){re.escape(self.local_part.lower())}\+(\d{{1,{_MAX_TICKET_DIGITS}}})"
            rf"-([a-z2-7]{{{TOKEN_LENGTH}}})@{re.escape(domain)}"
        )
        object.__setattr__(self, "_pattern", re.compile(pattern, re.IGNORECASE))

    @property
    def base_address(self) -> str:
        """The plain support address that new mail is sent to."""
        return f"{self.local_part}@{self.domain}"

    def owns(self, address: str) -> bool:
        """True for the base address or any ``local+…`` sub-address at our domain."""
        normalized = normalize_address(address)
        if normalized is None:
            return False
        local, _, domain = normalized.partition("@")
        return domain == self.domain and local.split("+", 1)[0] == self.local_part


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """The verdict on one recipient address that looks like a reply address."""

    address: str
    ticket: int | None  # None when the address is ours but not a well-formed reply address
    valid: bool
    reason: str


def make_token(secret: bytes, ticket: int) -> str:
    """The token for ``ticket``: a truncated HMAC-SHA256, lower-case base32."""
    digest = hmac.new(secret, f"mailproc-reply:{ticket}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:TOKEN_LENGTH]


def reply_address(scheme: ReplyAddressScheme, ticket: int) -> str:
    """The reply address that outbound mail about ``ticket`` carries."""
    if ticket < 0 or len(str(ticket)) > _MAX_TICKET_DIGITS:
        raise ValueError(f"ticket number out of range: {ticket}")
    token = make_token(scheme.secrets[0], ticket)
    return f"{scheme.local_part}+{ticket}-{token}@{scheme.domain}"


def check_reply_address(scheme: ReplyAddressScheme, address: str) -> TokenCheck | None:
    """Verify ``address`` if it has the reply-address shape; None for any other address."""
    normalized = normalize_address(address)
    if normalized is None:
        return None
    match = scheme._pattern.fullmatch(normalized)
    if match is None:
        if scheme.owns(normalized) and normalized != scheme.base_address:
            return TokenCheck(normalized, None, False, f"malformed reply address {normalized}")
        return None
    ticket = int(match[1])
    given = match[2].lower().encode("ascii")
    valid = False
    for secret in scheme.secrets:  # check every secret: no early exit on the first match
        valid |= hmac.compare_digest(make_token(secret, ticket).encode("ascii"), given)
    reason = "valid reply token" if valid else f"reply token does not match ticket #{ticket}"
    return TokenCheck(normalized, ticket, valid, f"{reason} ({normalized})")


def check_reply_addresses(
    scheme: ReplyAddressScheme, addresses: Iterable[str]
) -> tuple[TokenCheck, ...]:
    """Checks for every reply-shaped address among ``addresses``, in order, without repeats."""
    checks: dict[str, TokenCheck] = {}
    for address in addresses:
        check = check_reply_address(scheme, address)
        if check is not None:
            checks.setdefault(check.address, check)
    return tuple(checks.values())


def find_reply_addresses(scheme: ReplyAddressScheme, text: str) -> tuple[TokenCheck, ...]:
    """Checks for reply addresses written anywhere in ``text`` (e.g. a returned original)."""
    return check_reply_addresses(scheme, (m[0] for m in scheme._pattern.finditer(text)))
