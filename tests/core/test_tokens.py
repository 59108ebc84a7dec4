"""Reply tokens: made, verified, rejected when guessed or altered."""

from __future__ import annotations

import random
import string

import pytest

from mailproc.core.tokens import (
    TOKEN_LENGTH,
    ReplyAddressScheme,
    check_reply_address,
    check_reply_addresses,
    find_reply_addresses,
    make_token,
    reply_address,
)

SECRET = b"s3cret-for-tests-0123456789"
SCHEME = ReplyAddressScheme("support", "Help.Example.COM", (SECRET,))


def test_reply_address_round_trip() -> None:
    address = reply_address(SCHEME, 1042)
    assert address.startswith("support+1042-")
    assert address.endswith("@help.example.com")
    check = check_reply_address(SCHEME, address)
    assert check is not None
    assert (check.ticket, check.valid) == (1042, True)


def test_token_is_short_lowercase_and_ticket_specific() -> None:
    token = make_token(SECRET, 7)
    assert len(token) == TOKEN_LENGTH
    assert token == token.lower()
    assert token != make_token(SECRET, 8)
    assert token != make_token(b"another-secret-0123456789", 7)


def test_address_case_and_display_form_do_not_matter() -> None:
    address = reply_address(SCHEME, 5).upper()
    check = check_reply_address(SCHEME, f"<{address}>")
    assert check is not None and check.valid


def test_altered_token_is_rejected() -> None:
    address = reply_address(SCHEME, 5)
    local, domain = address.split("@")
    flipped = local[:-1] + ("a" if local[-1] != "a" else "b")
    check = check_reply_address(SCHEME, f"{flipped}@{domain}")
    assert check is not None
    assert not check.valid
    assert "does not match ticket #5" in check.reason


def test_token_of_one_ticket_does_not_open_another() -> None:
    token = reply_address(SCHEME, 5).split("-", 1)[1]
    check = check_reply_address(SCHEME, f"support+6-{token}")
    assert check is not None and not check.valid and check.ticket == 6


def test_guessed_tokens_never_verify() -> None:
    rng = random.Random(1)
    alphabet = string.ascii_lowercase[:26] + "234567"
    guesses = [
        f"support+5-{''.join(rng.choice(alphabet) for _ in range(TOKEN_LENGTH))}@help.example.com"
        for _ in range(2000)
    ]
    assert not any(check.valid for check in check_reply_addresses(SCHEME, guesses))


def test_rotated_secret_still_verifies_old_addresses() -> None:
    old = reply_address(SCHEME, 77)
    rotated = ReplyAddressScheme("support", "help.example.com", (b"new-secret-0123456789", SECRET))
    check = check_reply_address(rotated, old)
    assert check is not None and check.valid
    assert reply_address(rotated, 77) != old


def test_other_addresses_are_not_reply_addresses() -> None:
    assert check_reply_address(SCHEME, "support@help.example.com") is None
    assert check_reply_address(SCHEME, "ana@example.com") is None
    assert check_reply_address(SCHEME, "support+5-abc@other.example.com") is None
    assert check_reply_address(SCHEME, "not an address") is None


def test_malformed_reply_address_at_our_domain_is_reported() -> None:
    check = check_reply_address(SCHEME, "support+5-short@help.example.com")
    assert check is not None
    assert (check.ticket, check.valid) == (None, False)
    assert "malformed" in check.reason


def test_find_reply_addresses_in_returned_text() -> None:
    address = reply_address(SCHEME, 31)
    text = f"Reply-To: Support <{address}>\nTo: ana@example.com\nxsupport+1-{'a' * 16}@x.org"
    checks = find_reply_addresses(SCHEME, text)
    assert [(c.ticket, c.valid) for c in checks] == [(31, True)]


def test_scheme_rejects_weak_secrets_and_hides_them() -> None:
    with pytest.raises(ValueError):
        ReplyAddressScheme("support", "help.example.com", (b"short",))
    with pytest.raises(ValueError):
        ReplyAddressScheme("support", "help.example.com", ())
    with pytest.raises(ValueError):
        ReplyAddressScheme("sup port", "help.example.com", (SECRET,))
    assert SECRET.decode() not in repr(SCHEME)


def test_scheme_owns_its_base_and_sub_addresses() -> None:
    assert SCHEME.owns("Support@help.example.com")
    assert SCHEME.owns(reply_address(SCHEME, 3))
    assert not SCHEME.owns("supporter@help.example.com")
    assert not SCHEME.owns("support@example.com")
