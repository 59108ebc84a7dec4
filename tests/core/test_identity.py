"""Sender identity: verified agents, forged agents, lookalikes, customers."""

from __future__ import annotations

import pytest

from mailproc.core.identity import (
    Agent,
    AgentRole,
    IdentityPolicy,
    SenderKind,
    identify_sender,
    parse_authentication_results,
    skeleton,
)
from mailproc.core.limits import IntakeLimits
from mailproc.core.model import Customer, ParsedMessage, Plan
from mailproc.core.parse import parse_message

MARTA = Agent("Marta Ruiz", frozenset({AgentRole.SUPPORT_MANAGER}), ("Marta@Acme.example",))
CTO = Agent("Chen Li", frozenset({AgentRole.CTO, AgentRole.ENGINEERING}), ("chen@acme.example",))
POLICY = IdentityPolicy(
    agents=(MARTA, CTO),
    trusted_authserv_id="mx.acme.example",
    own_addresses=("support@help.acme.example",),
)
CUSTOMER = Customer(
    id=41,
    company="Globex",
    contact_name="Ana Gómez",
    emails=("ana@globex.example",),
    plan=Plan.ENTERPRISE,
    country="ES",
    language="es",
    timezone="Europe/Madrid",
)


def customers(address: str) -> Customer | None:
    return CUSTOMER if address in CUSTOMER.emails else None


def mail(sender: str, *headers: str) -> ParsedMessage:
    lines = [*headers, f"From: {sender}", "To: support@help.acme.example", "Subject: hola", ""]
    return parse_message(("\r\n".join(lines) + "\r\nBody\r\n").encode(), IntakeLimits())


def test_agent_with_dmarc_pass_from_trusted_server() -> None:
    message = mail(
        "Marta Ruiz <marta@acme.example>",
        "Authentication-Results: mx.acme.example; dkim=pass header.d=acme.example;"
        " spf=pass smtp.mailfrom=acme.example; dmarc=pass header.from=acme.example",
    )
    identity = identify_sender(message, POLICY, customers)
    assert identity.kind is SenderKind.AGENT
    assert identity.agent is MARTA
    assert AgentRole.SUPPORT_MANAGER in identity.agent.roles
    assert "dmarc=pass" in identity.reason


def test_forged_agent_from_without_authentication_results() -> None:
    identity = identify_sender(mail("marta@acme.example"), POLICY, customers)
    assert identity.kind is SenderKind.UNKNOWN
    assert "no Authentication-Results from mx.acme.example" in identity.reason
    assert "handled as non-agent" in identity.reason


def test_forged_agent_from_with_failing_authentication() -> None:
    message = mail(
        "marta@acme.example",
        "Authentication-Results: mx.acme.example; dkim=none; spf=softfail"
        " smtp.mailfrom=evil.example; dmarc=fail header.from=acme.example",
    )
    identity = identify_sender(message, POLICY, customers)
    assert identity.kind is SenderKind.UNKNOWN
    assert "dmarc=fail" in identity.reason


def test_authentication_results_from_another_server_are_ignored() -> None:
    message = mail(
        "marta@acme.example",
        "Authentication-Results: mx.evil.example; dmarc=pass header.from=acme.example",
    )
    identity = identify_sender(message, POLICY, customers)
    assert identity.kind is SenderKind.UNKNOWN
    assert "no Authentication-Results from mx.acme.example" in identity.reason


def test_forged_trusted_header_below_the_real_one_is_ignored() -> None:
    message = mail(
        "marta@acme.example",
        "Authentication-Results: mx.acme.example; dmarc=fail header.from=acme.example",
        "Received: from evil.example by mx.acme.example",
        "Authentication-Results: mx.acme.example; dmarc=pass header.from=acme.example",
    )
    assert identify_sender(message, POLICY, customers).kind is SenderKind.UNKNOWN


def test_aligned_dkim_or_spf_pass_is_enough() -> None:
    dkim = mail(
        "chen@acme.example",
        "Authentication-Results: mx.acme.example; dkim=pass header.d=acme.example",
    )
    spf = mail(
        "chen@acme.example",
        "Authentication-Results: mx.acme.example; spf=pass smtp.mailfrom=bounces@mail.acme.example",
    )
    assert identify_sender(dkim, POLICY, customers).kind is SenderKind.AGENT
    assert identify_sender(spf, POLICY, customers).kind is SenderKind.AGENT


def test_unaligned_dkim_pass_is_not_enough() -> None:
    message = mail(
        "chen@acme.example",
        "Authentication-Results: mx.acme.example; dkim=pass header.d=mailer.example",
    )
    assert identify_sender(message, POLICY, customers).kind is SenderKind.UNKNOWN


def test_cyrillic_lookalike_of_an_agent_is_never_an_agent() -> None:
    lookalike = "m\u0430rta@acme.example"  # Cyrillic 'а'
    message = mail(
        f"Marta Ruiz <{lookalike}>",
        "Authentication-Results: mx.acme.example; dmarc=pass header.from=acme.example",
    )
    identity = identify_sender(message, POLICY, customers)
    assert identity.kind is SenderKind.UNKNOWN
    assert identity.lookalike_of == "marta@acme.example"
    assert "confusable with marta@acme.example" in identity.reason


def test_lookalike_domain_of_our_own_address_is_flagged() -> None:
    identity = identify_sender(mail("support@help.\u0430cme.example"), POLICY, customers)
    assert identity.kind is SenderKind.UNKNOWN
    assert identity.lookalike_of == "support@help.acme.example"


def test_skeleton_folds_common_confusables() -> None:
    assert skeleton("pаypal@exаmple.com") == skeleton("paypal@example.com")
    assert skeleton("rnarta@acme.example") == skeleton("marta@acme.example")
    assert skeleton("ana@example.com") != skeleton("ane@example.com")


def test_case_and_idna_are_normalized_before_matching() -> None:
    agent = Agent("Zoë", frozenset({AgentRole.AGENT}), ("zoe@bücher.example",))
    policy = IdentityPolicy(agents=(agent,))
    identity = identify_sender(mail("ZOE@xn--bcher-kva.example"), policy, customers)
    assert identity.kind is SenderKind.AGENT
    assert "no authserv-id configured" in identity.reason


def test_customer_and_unknown_senders() -> None:
    customer = identify_sender(mail("Ana <ANA@globex.example>"), POLICY, customers)
    assert customer.kind is SenderKind.CUSTOMER and customer.customer is CUSTOMER
    unknown = identify_sender(mail("someone@elsewhere.example"), POLICY, customers)
    assert unknown.kind is SenderKind.UNKNOWN and unknown.lookalike_of is None


def test_inbound_mailproc_headers_are_ignored() -> None:
    message = mail("someone@elsewhere.example", "X-Mailproc-Agent: marta@acme.example")
    assert identify_sender(message, POLICY, customers).kind is SenderKind.UNKNOWN


def test_several_from_addresses_are_never_an_agent() -> None:
    message = mail(
        "marta@acme.example, chen@acme.example",
        "Authentication-Results: mx.acme.example; dmarc=pass header.from=acme.example",
    )
    identity = identify_sender(message, POLICY, customers)
    assert identity.kind is SenderKind.UNKNOWN
    assert "2 From addresses" in identity.reason


def test_parse_authentication_results_handles_comments_and_versions() -> None:
    parsed = parse_authentication_results(
        "MX.Acme.example 1; (checked) dkim/1=pass (good sig) header.d=acme.example"
        ' header.s="s1"; spf=neutral (not listed) smtp.mailfrom=a@b.example'
    )
    assert parsed is not None
    assert parsed.authserv_id == "mx.acme.example"
    assert [(r.method, r.result) for r in parsed.results] == [("dkim", "pass"), ("spf", "neutral")]
    assert parsed.results[0].prop("header.s") == "s1"
    assert parse_authentication_results("mx.acme.example; none") is not None
    assert parse_authentication_results("mx.acme.example;\r\n dmarc=pass") is None
    assert parse_authentication_results("  ") is None


def test_policy_rejects_bad_agent_configuration() -> None:
    with pytest.raises(ValueError):
        Agent("Nobody", frozenset({AgentRole.AGENT}), ("not-an-address",))
    with pytest.raises(ValueError):
        IdentityPolicy(agents=(MARTA, Agent("Twin", frozenset(), ("marta@acme.example",))))


def test_explicit_dmarc_fail_wins_over_a_dkim_pass() -> None:
    message = mail(
        "chen@acme.example",
        "Authentication-Results: mx.acme.example; dkim=pass header.d=acme.example;"
        " dmarc=fail header.from=acme.example",
    )
    assert identify_sender(message, POLICY, customers).kind is SenderKind.UNKNOWN


def test_dmarc_pass_for_another_domain_is_not_an_agent() -> None:
    message = mail(
        "marta@acme.example",
        "Authentication-Results: mx.acme.example; dmarc=pass header.from=evil.example",
    )
    identity = identify_sender(message, POLICY, customers)
    assert identity.kind is SenderKind.UNKNOWN
    assert "authentication failed" in identity.reason


def test_dmarc_pass_without_header_from_needs_an_aligned_dkim_or_spf_pass() -> None:
    bare = mail("marta@acme.example", "Authentication-Results: mx.acme.example; dmarc=pass")
    aligned = mail(
        "marta@acme.example",
        "Authentication-Results: mx.acme.example; dkim=pass header.d=acme.example; dmarc=pass",
    )
    assert identify_sender(bare, POLICY, customers).kind is SenderKind.UNKNOWN
    assert identify_sender(aligned, POLICY, customers).kind is SenderKind.AGENT


PASS = "Authentication-Results: mx.acme.example; dmarc=pass header.from=acme.example"


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        (("From: marta@acme.example", PASS), "2 From headers"),
        (("Sender: mallory@evil.example", PASS), "Sender header names another address"),
        (("Sender: marta@acme.example", "Sender: marta@acme.example", PASS), "2 Sender headers"),
        ((PASS, PASS), "2 Authentication-Results from mx.acme.example"),
    ],
)
def test_ambiguous_author_or_duplicate_results_is_never_an_agent(
    headers: tuple[str, ...], why: str
) -> None:
    identity = identify_sender(mail("marta@acme.example", *headers), POLICY, customers)
    assert identity.kind is SenderKind.UNKNOWN
    assert why in identity.reason


def test_a_sender_header_naming_the_agent_is_fine() -> None:
    message = mail("marta@acme.example", "Sender: Marta <marta@acme.example>", PASS)
    assert identify_sender(message, POLICY, customers).kind is SenderKind.AGENT
