"""Address validation and normalization: the one place that decides whether two addresses match."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_FORBIDDEN = re.compile(r"[\r\n\x00]")
_LOCAL_OK = re.compile(r"^[^\s@<>()\[\]\\,;:\"]{1,64}$")
_LABEL_OK = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def has_forbidden_chars(value: str) -> bool:
    """True when a value would break a header: CR, LF or NUL anywhere."""
    return bool(_FORBIDDEN.search(value))


def person_name(display_name: str, max_chars: int = 80) -> str:
    """A From display name fit to greet its sender by; "" for an address, a link or no name.

    ``"Jane Doe" <customer2635@example.com>`` is greeted as Jane Doe; a display name that is
    only the address again, or holds a URL, a line break or no letter, is not a name.
    """
    name = " ".join(display_name.split()).strip("\"' ")
    if (
        not name
        or len(name) > max_chars
        or has_forbidden_chars(display_name)
        or "@" in name
        or "://" in name
        or not any(char.isalpha() for char in name)
    ):
        return ""
    return name


@lru_cache(maxsize=4096)  # pure; the same few domains come back (our own on every mail we send)
def normalize_domain(domain: str) -> str | None:
    """Lower-case a domain and turn Unicode labels into their IDNA (punycode) form."""
    domain = domain.strip().rstrip(".")
    if not domain or has_forbidden_chars(domain):
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL_OK.match(label) for label in labels):
        return None
    return ascii_domain


@lru_cache(maxsize=8192)  # pure; a batch asks about the same few addresses many times
def normalize_address(address: str) -> str | None:
    """Return the canonical form of a mailbox address, or None if it is not one.

    The local part is compared case-insensitively (as every real mail system does); the
    domain is lower-cased and IDNA-encoded, so ``Ana@Éxample.com`` and ``ana@xn--xample-9ua.com``
    match. A Cyrillic lookalike stays a different address: IDNA keeps it distinct.
    """
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1].strip()
    if has_forbidden_chars(address) or address.count("@") != 1:
        return None
    local, domain = address.split("@")
    local = local.lower()
    if not _LOCAL_OK.match(local) or local.startswith(".") or local.endswith("."):
        return None
    normalized_domain = normalize_domain(domain)
    if normalized_domain is None:
        return None
    return f"{local}@{normalized_domain}"


_ANGLE = re.compile(r"<([^<>]*)>")
_AROUND_PUNCT = re.compile(r"\s*([.@])\s*")


@dataclass(frozen=True, slots=True)
class Salvaged:
    """An address read out of a malformed header value, in canonical form."""

    addr: str


def salvage_address(text: str) -> Salvaged | None:
    """The one mailbox a malformed address value names, when there is exactly one.

    ``"X" <a@b.com.>`` gives a@b.com, ``Test test@example.com`` test@example.com, and
    ``<john . smith @ example.com>`` (obsolete spacing) john.smith@example.com. Two
    candidates, or a local part with a space inside a word run, give None: a guess would
    pick someone's address.
    """
    if has_forbidden_chars(text):
        return None
    brackets = _ANGLE.findall(text)
    if len(brackets) > 1:
        return None
    if brackets:
        candidates = [_AROUND_PUNCT.sub(r"\1", brackets[0].strip())]
    else:
        tokens = _AROUND_PUNCT.sub(r"\1", text).replace(",", " ").split()
        candidates = [t.strip("\"'()[];:") for t in tokens if "@" in t]
    if len(candidates) != 1:
        return None
    address = normalize_address(candidates[0])
    return Salvaged(address) if address else None
