"""Refunds (§6): authorization levels, who may approve, request and amount detection (en/es/fr)."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailproc.core.identity import AgentRole
from mailproc.core.model import Plan
from mailproc.core.refunds import (
    DEFAULT_REFUND_POLICY,
    MAX_AMOUNT,
    ROLE_LEVELS,
    Amount,
    AuthorizationLevel,
    RefundCase,
    RefundKind,
    RefundPolicy,
    RefundRequest,
    can_approve,
    cancellation_effective,
    detect_refund_request,
    find_amount,
    metrics_after_outcome,
    parse_amount,
    required_level,
)
from mailproc.core.survey import ChurnRisk

AGENT, MANAGER, FINANCE = (
    AuthorizationLevel.AGENT,
    AuthorizationLevel.SUPPORT_MANAGER,
    AuthorizationLevel.FINANCE_DIRECTOR,
)
STARTER, PRO, ENTERPRISE = Plan.STARTER, Plan.PROFESSIONAL, Plan.ENTERPRISE
REFUND, CREDIT, CANCEL = RefundKind.REFUND, RefundKind.PARTIAL_CREDIT, RefundKind.CANCELLATION
D = Decimal


def case(
    amount: str,
    plan: Plan,
    days: int,
    kind: RefundKind = REFUND,
    currency: str = "USD",
    **flags: bool,
) -> RefundCase:
    return RefundCase(D(amount), currency, plan, days, kind, **flags)


# (what, case, level, words the reason must contain)
LEVELS = [
    (
        "§6.2 use case: 1002 Starter refund within 30 days",
        case("49", STARTER, 16),
        AGENT,
        "Starter",
    ),
    ("Professional refund at the plan price", case("149", PRO, 29), AGENT, "within 30 days"),
    ("30 days is not over 30", case("149", PRO, 30), AGENT, ""),
    ("31 days is over 30", case("149", PRO, 31), MANAGER, "31 days since purchase"),
    ("refund over the plan price", case("60", STARTER, 3), MANAGER, "over the Starter price"),
    ("partial credit", case("500", PRO, 3, CREDIT), MANAGER, "partial credit"),
    ("partial credit at the $1,000 limit", case("1000", PRO, 3, CREDIT), MANAGER, ""),
    ("just over $1,000", case("1000.01", PRO, 3, CREDIT), FINANCE, "manager limit"),
    ("Enterprise cancellation", case("0", ENTERPRISE, 400, CANCEL), MANAGER, "custom pricing"),
    ("Enterprise refund", case("200", ENTERPRISE, 5), MANAGER, "Enterprise refund"),
    ("Starter cancellation, no money back", case("0", STARTER, 400, CANCEL), AGENT, "cancel"),
    ("cancellation with money back after 30 days", case("49", STARTER, 90, CANCEL), MANAGER, ""),
    ("contract dispute", case("10", PRO, 3, contract_dispute=True), FINANCE, "dispute"),
    (
        "§6.3 edge case: Enterprise price lock",
        case("300", ENTERPRISE, 200, CREDIT, price_lock=True),
        FINANCE,
        "price-locked",
    ),
    ("large refund", case("1500", ENTERPRISE, 5), FINANCE, "1500 USD"),
    ("another currency", case("49", STARTER, 3, currency="EUR"), MANAGER, "EUR"),
]


@pytest.mark.parametrize(
    ("refund", "level", "words"), [c[1:] for c in LEVELS], ids=[c[0] for c in LEVELS]
)
def test_required_level(refund: RefundCase, level: AuthorizationLevel, words: str) -> None:
    needed = required_level(refund)
    assert needed.level is level
    assert words in needed.reason


def test_reason_lists_every_rule_at_the_deciding_level() -> None:
    needed = required_level(case("1200", ENTERPRISE, 5, contract_dispute=True, price_lock=True))
    assert needed.level is FINANCE
    assert needed.reason.count(";") == 2
    assert "custom pricing" not in needed.reason  # a level-2 reason does not decide


def test_plan_prices_are_data() -> None:
    dearer = RefundPolicy(plan_prices={STARTER: D(59), PRO: D(179)})
    assert required_level(case("59", STARTER, 3), dearer).level is AGENT
    assert required_level(case("59", STARTER, 3)).level is MANAGER
    assert DEFAULT_REFUND_POLICY.plan_prices == {STARTER: D(49), PRO: D(149)}


R = AgentRole
# (roles, level the case needs, allowed): higher levels approve lower ones.
APPROVALS = [
    ({R.AGENT}, AGENT, True),
    ({R.AGENT}, MANAGER, False),
    ({R.SUPPORT_MANAGER}, AGENT, True),
    ({R.SUPPORT_MANAGER}, MANAGER, True),
    ({R.SUPPORT_MANAGER}, FINANCE, False),
    ({R.SUPPORT_DIRECTOR}, MANAGER, True),
    ({R.SUPPORT_DIRECTOR}, FINANCE, False),
    ({R.FINANCE_DIRECTOR}, AGENT, True),
    ({R.FINANCE_DIRECTOR}, FINANCE, True),
    ({R.AGENT, R.FINANCE_DIRECTOR}, FINANCE, True),
    ({R.CTO}, AGENT, False),
    ({R.DEVOPS, R.ENGINEERING, R.PRODUCT}, AGENT, False),
    (set(), AGENT, False),
]


@pytest.mark.parametrize(("roles", "level", "allowed"), APPROVALS)
def test_can_approve(roles: set[AgentRole], level: AuthorizationLevel, allowed: bool) -> None:
    decision = can_approve(roles, level)
    assert decision.allowed is allowed
    assert level.label in decision.reason or "no refund authority" in decision.reason


def test_refusal_says_what_is_missing() -> None:
    decision = can_approve(iter([R.AGENT]), MANAGER)  # any iterable, read once
    assert not decision.allowed
    assert decision.reason == "Agent (level 1) is below the Support Manager (level 2) this needs"
    assert can_approve([R.CTO], AGENT).reason == "no refund authority (roles: cto)"


def test_every_refund_role_has_a_level() -> None:
    assert set(ROLE_LEVELS.values()) == set(AuthorizationLevel)
    assert [level.rank for level in AuthorizationLevel] == [1, 2, 3]


@given(
    amount=st.decimals(min_value=0, max_value=5000, places=2),
    extra=st.decimals(min_value=0, max_value=5000, places=2),
    days=st.integers(0, 400),
    more_days=st.integers(0, 400),
    plan=st.sampled_from(Plan),
    kind=st.sampled_from(RefundKind),
)
def test_more_money_or_time_never_lowers_the_level(
    amount: Decimal, extra: Decimal, days: int, more_days: int, plan: Plan, kind: RefundKind
) -> None:
    base = required_level(RefundCase(amount, "USD", plan, days, kind)).level
    bigger = required_level(RefundCase(amount + extra, "USD", plan, days + more_days, kind)).level
    assert bigger.rank >= base.rank


# --- detection -------------------------------------------------------------------------------

USD, EUR = "USD", "EUR"
NARROW_SPACE = "\u202f"
REQUESTS = [
    (
        "§6.2 sample mail of 1002",
        "Refund request for our Starter plan",
        "Could you refund the $49 and cancel the subscription?",
        RefundRequest(True, True, Amount(D(49), USD)),
    ),
    ("amount after", "", "Please refund 149 USD.", RefundRequest(True, False, Amount(D(149), USD))),
    (
        "thousands and cents",
        "",
        "We want our money back: US$ 1,250.50",
        RefundRequest(True, False, Amount(D("1250.50"), USD)),
    ),
    ("cancellation only", "", "I want to cancel my plan.", RefundRequest(False, True, None)),
    (
        "Spanish refund and cancellation",
        "Solicitud de reembolso",
        "Quisiera la devolución del dinero, 149,00 €, y cancelar mi suscripción.",
        RefundRequest(True, True, Amount(D(149), EUR)),
    ),
    (
        "Spanish, dollars written out",
        "",
        "Pedimos un reembolso de 49 dólares.",
        RefundRequest(True, False, Amount(D(49), USD)),
    ),
    ("Spanish unsubscribe", "", "Queremos darnos de baja.", RefundRequest(False, True, None)),
    (
        "French refund with a spaced thousand",
        "Demande de remboursement",
        "Merci de nous rembourser 1 000,00 € et de résilier notre abonnement.",
        RefundRequest(True, True, Amount(D(1000), EUR)),
    ),
    (
        "French, code after",
        "",
        "Annulation de mon abonnement : 149 EUR à rembourser",
        RefundRequest(True, True, Amount(D(149), EUR)),
    ),
]


@pytest.mark.parametrize(
    ("subject", "text", "expected"), [r[1:] for r in REQUESTS], ids=[r[0] for r in REQUESTS]
)
def test_detect_refund_request(subject: str, text: str, expected: RefundRequest) -> None:
    assert detect_refund_request(subject, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Error 503: Service Unavailable",
        "The nightly sync was cancelled after 200 calls ($5 of credits used).",
        "El informe se canceló por error.",
        "La synchronisation a été annulée.",
    ],
)
def test_no_refund_request(text: str) -> None:
    assert detect_refund_request("Help", text) is None


AMOUNTS = [
    ("149.00", Amount(D("149.00"), None)),
    ("149", Amount(D(149), None)),
    ("$149", Amount(D(149), USD)),
    ("149 USD", Amount(D(149), USD)),
    ("usd 149", Amount(D(149), USD)),
    ("149,00 €", Amount(D(149), EUR)),
    ("€149.50", Amount(D("149.50"), EUR)),
    ("£49", Amount(D(49), "GBP")),
    ("1.000,50", Amount(D("1000.50"), None)),
    ("1,000", Amount(D(1000), None)),
    ("1 000,00 €", Amount(D(1000), EUR)),
    ("0", None),
    ("0.00 USD", None),
    ("-5", None),
    ("abc", None),
    ("$149 USD", None),
    ("149.999", Amount(D(149999), None)),  # three digits after one separator: thousands
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), AMOUNTS)
def test_parse_amount(text: str, expected: Amount | None) -> None:
    assert parse_amount(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("refund $149 200 times", Amount(D(149), USD)),  # a plain space after "$149" ends it
        ("ticket 12345, order 2 of 49 USD", Amount(D(49), USD)),
        ("30 days ago we paid 49,90 €", Amount(D("49.90"), EUR)),
        ("no amount, 30 days", None),
    ],
)
def test_find_amount_needs_a_currency(text: str, expected: Amount | None) -> None:
    assert find_amount(text) == expected


@given(st.decimals(min_value=D("0.01"), max_value=D("999999.99"), places=2))
def test_written_amounts_read_back(value: Decimal) -> None:
    whole, cents = f"{value:,.2f}".split(".")
    english = f"${whole}.{cents}"
    french = f"{whole.replace(',', NARROW_SPACE)},{cents} €"
    spanish = f"{whole.replace(',', '.')},{cents} EUR"
    assert find_amount(f"refund of {english}") == Amount(value, USD)
    assert parse_amount(french) == Amount(value, EUR)
    assert find_amount(f"reembolso de {spanish} por favor") == Amount(value, EUR)


@pytest.mark.parametrize(
    "text",
    ["$" + " 1" * 20_000, "1." * 20_000 + "€", "1 " * 30_000 + "USD", "cancel " * 20_000],
)
def test_long_hostile_text_is_read_in_linear_time(text: str) -> None:
    started = time.perf_counter()
    detect_refund_request("refund", text)
    parse_amount(text)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "text",
    ["refund $10000000000 now", "refund 10.000.000.000,00 EUR", "refund 10^10: $1" + "0" * 40],
)
def test_huge_amounts_are_clamped_and_flagged(text: str) -> None:
    request = detect_refund_request("refund", text)
    assert request is not None and request.amount is not None
    assert request.amount.value == MAX_AMOUNT and request.amount.clamped


def test_ordinary_amounts_are_not_clamped() -> None:
    assert find_amount("refund $149") == Amount(Decimal(149), "USD")
    assert not find_amount("refund 9999999999.99 EUR").clamped  # type: ignore[union-attr]


# --- issue 15 part 4: credits, disputes, price locks, unknown signup, cancellations -----------

PARTIAL = RefundKind.PARTIAL_CREDIT
PART_4_REQUESTS = [
    (
        "partial credit",
        "After the outage we ask for a partial credit of $200.",
        RefundKind.PARTIAL_CREDIT,
        False,
    ),
    (
        "Spanish partial credit",
        "Pedimos un crédito parcial de 200 dólares.",
        RefundKind.PARTIAL_CREDIT,
        False,
    ),
    (
        "French partial credit",
        "Nous demandons un crédit partiel de 200 USD.",
        RefundKind.PARTIAL_CREDIT,
        False,
    ),
    ("contract dispute", "We dispute the contract price.", RefundKind.REFUND, True),
    ("Spanish dispute", "Tenemos una disputa sobre el contrato firmado.", RefundKind.REFUND, True),
    ("French dispute", "Nous contestons le contrat signé en 2025.", RefundKind.REFUND, True),
    (
        "a dispute and a cancellation stay a refund case",
        "Contract dispute: we cancel our plan.",
        RefundKind.REFUND,
        True,
    ),
    ("cancellation only", "Please cancel my subscription.", RefundKind.CANCELLATION, False),
]


@pytest.mark.parametrize(
    ("text", "kind", "dispute"),
    [r[1:] for r in PART_4_REQUESTS],
    ids=[r[0] for r in PART_4_REQUESTS],
)
def test_partial_credits_and_disputes_are_requests(
    text: str, kind: RefundKind, dispute: bool
) -> None:
    request = detect_refund_request("", text)
    assert request is not None
    assert (request.kind, request.contract_dispute) == (kind, dispute)


PART_4_LEVELS = [
    (
        "no signup date: the Support Manager, and why",
        RefundCase(D(49), "USD", Plan.STARTER, None),
        AuthorizationLevel.SUPPORT_MANAGER,
        "no Signup_Date on record: whether it is within the 30-day guarantee cannot be judged",
    ),
    (
        "no signup date does not matter to a cancellation",
        RefundCase(D(0), "USD", Plan.STARTER, None, RefundKind.CANCELLATION, notice_days=7),
        AuthorizationLevel.AGENT,
        "Starter cancellation",
    ),
    (
        "short notice",
        RefundCase(D(0), "USD", Plan.PROFESSIONAL, 90, RefundKind.CANCELLATION, notice_days=3),
        AuthorizationLevel.SUPPORT_MANAGER,
        "3 days' notice, under the 7 days' notice",
    ),
    (
        "a price-locked cancellation",
        RefundCase(D(0), "USD", Plan.ENTERPRISE, 90, RefundKind.CANCELLATION, price_lock=True),
        AuthorizationLevel.FINANCE_DIRECTOR,
        "price-locked contract",
    ),
    (
        "a dispute at a dollar",
        RefundCase(D(1), "USD", Plan.STARTER, 3, contract_dispute=True),
        AuthorizationLevel.FINANCE_DIRECTOR,
        "contract dispute",
    ),
    (
        "a partial credit at the limit",
        RefundCase(D(1000), "USD", Plan.PROFESSIONAL, 3, RefundKind.PARTIAL_CREDIT),
        AuthorizationLevel.SUPPORT_MANAGER,
        "partial credit; 1000 USD is over the Professional price of 149",
    ),
    (
        "a partial credit a cent over",
        RefundCase(D("1000.01"), "USD", Plan.PROFESSIONAL, 3, RefundKind.PARTIAL_CREDIT),
        AuthorizationLevel.FINANCE_DIRECTOR,
        "1000.01 USD is over the 1000 USD manager limit",
    ),
]


@pytest.mark.parametrize(
    ("refund", "level", "reason"), [r[1:] for r in PART_4_LEVELS], ids=[r[0] for r in PART_4_LEVELS]
)
def test_part_4_levels(refund: RefundCase, level: AuthorizationLevel, reason: str) -> None:
    needed = required_level(refund)
    assert (needed.level, needed.reason) == (level, reason)


def test_cancellation_takes_effect_after_the_notice_and_never_in_the_past() -> None:
    asked, today = dt.date(2026, 11, 27), dt.date(2026, 11, 28)
    assert cancellation_effective(asked, today, None) == (dt.date(2026, 12, 4), 7)
    late = dt.date(2026, 12, 20)
    assert cancellation_effective(asked, late, None) == (late, 23)
    assert cancellation_effective(asked, today, dt.date(2026, 11, 30)) == (dt.date(2026, 11, 30), 3)


@pytest.mark.parametrize(
    ("score", "answers", "cancellation", "expected"),
    [
        (3.9, 1, True, (2.5, ChurnRisk.HIGH)),
        (5.0, 1, True, (3.0, ChurnRisk.HIGH)),  # High even when the mean stays at 3
        (5.0, 1, False, (4.0, ChurnRisk.MEDIUM)),  # a refund: at least Medium
        (2.0, 1, False, (2.5, ChurnRisk.HIGH)),  # never lowered by the floor
        (None, 0, False, (3.0, ChurnRisk.MEDIUM)),
    ],
)
def test_metrics_after_a_refund_or_a_cancellation(
    score: float | None, answers: int, cancellation: bool, expected: tuple[float, ChurnRisk]
) -> None:
    day = dt.date(2026, 11, 27)
    metrics = metrics_after_outcome(score, answers, cancellation, day, dt.date(2026, 1, 1))
    assert (metrics.satisfaction_score, metrics.churn_risk) == expected
    assert metrics.last_support_ticket == day
