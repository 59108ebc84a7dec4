"""Refunds and cancellations (§6): request detection, amounts, authorization levels (§6.1)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from mailproc.core.classify import fold_text
from mailproc.core.identity import AgentRole
from mailproc.core.model import Plan
from mailproc.core.survey import ChurnRisk, CustomerMetrics, updated_customer_metrics


@dataclass(frozen=True, slots=True)
class Decision:
    """A yes or no with the reason recorded in the event log or the error mail."""

    allowed: bool
    reason: str


class AuthorizationLevel(StrEnum):
    """Who may decide a refund or cancellation (§6.1): levels 1 to 3."""

    AGENT = "agent"
    SUPPORT_MANAGER = "support_manager"
    FINANCE_DIRECTOR = "finance_director"

    @property
    def rank(self) -> int:
        """1 for agent, 2 for Support Manager, 3 for Finance Director."""
        return _RANKS[self]

    @property
    def label(self) -> str:
        """A human name with the level, e.g. ``Support Manager (level 2)``."""
        return f"{self.value.replace('_', ' ').title()} (level {self.rank})"


_RANKS = {level: rank for rank, level in enumerate(AuthorizationLevel, start=1)}

# The refund authority of each role. The Support Director heads the Support Managers, so
# approves what they may (level 2); money over the limit and contract disputes stay with the
# Finance Director (§6.1). The CTO and the technical teams have no refund authority.
ROLE_LEVELS: Mapping[AgentRole, AuthorizationLevel] = MappingProxyType(
    {
        AgentRole.AGENT: AuthorizationLevel.AGENT,
        AgentRole.SUPPORT_MANAGER: AuthorizationLevel.SUPPORT_MANAGER,
        AgentRole.SUPPORT_DIRECTOR: AuthorizationLevel.SUPPORT_MANAGER,
        AgentRole.FINANCE_DIRECTOR: AuthorizationLevel.FINANCE_DIRECTOR,
    }
)


class RefundKind(StrEnum):
    """What the customer gets back."""

    REFUND = "refund"
    PARTIAL_CREDIT = "partial_credit"
    CANCELLATION = "cancellation"


def _default_prices() -> Mapping[Plan, Decimal]:
    # Monthly list prices (§6.1 "$49–$149"); Enterprise has custom pricing, so no list price.
    return MappingProxyType({Plan.STARTER: Decimal(49), Plan.PROFESSIONAL: Decimal(149)})


@dataclass(frozen=True, slots=True)
class RefundPolicy:
    """Plan prices, the money-back guarantee and the Support Manager's limit (§6.1)."""

    plan_prices: Mapping[Plan, Decimal] = field(default_factory=_default_prices)
    currency: str = "USD"
    guarantee_days: int = 30
    manager_limit: Decimal = Decimal(1000)
    notice_days: int = 7  # an agent processes cancellations with 7 days' notice (§6.1)


DEFAULT_REFUND_POLICY = RefundPolicy()


@dataclass(frozen=True, slots=True)
class RefundCase:
    """A refund, credit or cancellation to decide; ``amount`` is 0 for a plain cancellation.

    ``days_since_purchase`` is None when the customer has no Signup_Date: whether the
    money-back guarantee still holds cannot be judged. ``notice_days`` is the notice a
    cancellation is confirmed with (None: not yet chosen).
    """

    amount: Decimal
    currency: str
    plan: Plan
    days_since_purchase: int | None
    kind: RefundKind = RefundKind.REFUND
    contract_dispute: bool = False
    price_lock: bool = False  # a contract with a price lock (§6.3 edge case)
    notice_days: int | None = None


@dataclass(frozen=True, slots=True)
class RequiredLevel:
    """The lowest level that may decide a case, and why."""

    level: AuthorizationLevel
    reason: str


def required_level(case: RefundCase, policy: RefundPolicy = DEFAULT_REFUND_POLICY) -> RequiredLevel:
    """The level a case needs (§6.1, §6.3); the reason names each rule that sets it."""
    fd, sm = AuthorizationLevel.FINANCE_DIRECTOR, AuthorizationLevel.SUPPORT_MANAGER
    amount = f"{case.amount} {case.currency}"
    kind = case.kind.value.replace("_", " ")
    money_back = case.kind is not RefundKind.CANCELLATION or case.amount > 0
    price = policy.plan_prices.get(case.plan)
    limit = f"{policy.manager_limit} {policy.currency}"
    rules = [
        (fd, case.amount > policy.manager_limit, f"{amount} is over the {limit} manager limit"),
        (fd, case.contract_dispute, "contract dispute"),
        (fd, case.price_lock, "price-locked contract"),
        (
            sm,
            case.currency != policy.currency,
            f"amount in {case.currency}, limits in {policy.currency}",
        ),
        (
            sm,
            money_back and case.days_since_purchase is None,
            f"no Signup_Date on record: whether it is within the {policy.guarantee_days}-day"
            " guarantee cannot be judged",
        ),
        (
            sm,
            money_back
            and case.days_since_purchase is not None
            and case.days_since_purchase > policy.guarantee_days,
            f"{case.days_since_purchase} days since purchase, over the"
            f" {policy.guarantee_days}-day guarantee",
        ),
        (
            sm,
            case.notice_days is not None and case.notice_days < policy.notice_days,
            f"{case.notice_days} days' notice, under the {policy.notice_days} days' notice",
        ),
        (sm, case.kind is RefundKind.PARTIAL_CREDIT, "partial credit"),
        (sm, price is None, f"{case.plan} {kind} (custom pricing)"),
        (
            sm,
            price is not None and case.amount > price,
            f"{amount} is over the {case.plan} price of {price}",
        ),
    ]
    applying = [(level, reason) for level, holds, reason in rules if holds]
    if not applying:
        if not money_back:
            return RequiredLevel(AuthorizationLevel.AGENT, f"{case.plan} cancellation")
        return RequiredLevel(
            AuthorizationLevel.AGENT,
            f"{case.plan} {kind} of {amount} within {policy.guarantee_days} days,"
            " up to the plan price",
        )
    level = max((level for level, _ in applying), key=lambda lvl: lvl.rank)
    return RequiredLevel(level, "; ".join(reason for lvl, reason in applying if lvl is level))


def can_approve(roles: Iterable[AgentRole], level: AuthorizationLevel) -> Decision:
    """Whether someone with ``roles`` may decide a case of ``level``; higher levels may too."""
    roles = tuple(roles)
    held = [ROLE_LEVELS[role] for role in roles if role in ROLE_LEVELS]
    if not held:
        return Decision(False, f"no refund authority (roles: {', '.join(sorted(roles)) or 'none'})")
    best = max(held, key=lambda lvl: lvl.rank)
    verb = "covers" if best.rank >= level.rank else "is below"
    return Decision(best.rank >= level.rank, f"{best.label} {verb} the {level.label} this needs")


# --- detection in customer mail --------------------------------------------------------------

_SPACES = " \u00a0\u202f"


def _number(groups: str) -> str:
    """1,234.56 · 1.234,56 · 1 234,56 · 149 · 149.00 · 149,5 (two decimals at most)."""
    return rf"\d{{1,3}}(?:[{groups}]\d{{3}})+(?:[.,]\d{{1,2}})?|\d+(?:[.,]\d{{1,2}})?"


# A plain space groups digits only before the currency ("1 000,00 €"): after "$149" it more
# likely starts another number ("$149 200 times").
_NUMBER = _number(",.\u00a0\u202f")
_SPACED_NUMBER = _number(_SPACES + ",.")
_SYMBOLS = {
    "us$": "USD",
    "ca$": "CAD",
    "c$": "CAD",
    "au$": "AUD",
    "a$": "AUD",
    "mx$": "MXN",
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
}
_WORDS = {
    "dollars": "USD",
    "dollar": "USD",
    "dolares": "USD",
    "dólares": "USD",
    "euros": "EUR",
    "euro": "EUR",
    "pounds": "GBP",
    "libras": "GBP",
}
_CODES = ("USD", "EUR", "GBP", "CAD", "AUD", "NZD", "MXN", "CHF", "SGD", "ARS", "CLP", "COP")
_SYMBOL = "|".join(re.escape(symbol) for symbol in _SYMBOLS)
_CODE = "|".join(_CODES)
_WORD = "|".join(_WORDS)
_BEFORE = rf"(?P<before>{_SYMBOL}|(?:{_CODE})(?![a-z]))"
_AFTER = rf"(?P<after>{_SYMBOL}|(?:{_CODE}|{_WORD})(?![a-z]))"
_ANY_AMOUNT = rf"(?:{_BEFORE}[ \u00a0]?)?(?P<number>{_SPACED_NUMBER})(?:[ \u00a0]?{_AFTER})?"
_AMOUNT_ONLY = re.compile(rf"\s*{_ANY_AMOUNT}\s*", re.IGNORECASE)
_AMOUNT_IN_TEXT = re.compile(
    rf"(?<![\w.,$€£])(?:{_BEFORE}[ \u00a0]?(?P<n1>{_NUMBER})"
    rf"|(?P<n2>{_SPACED_NUMBER})[ \u00a0]?{_AFTER})(?!\d)",
    re.IGNORECASE,
)
_REFUND = re.compile(
    r"(?<!\w)(?:refund\w*|money back|reimburs\w*|reembols\w*|reintegro"
    r"|devolucion (?:del? )?(?:dinero|importe|pago|cobro)|devuelv\w* (?:el|mi|nuestro) dinero"
    r"|rembours\w*)(?!\w)"
)
_PARTIAL_CREDIT = re.compile(r"(?<!\w)(?:partial credit|credito parcial|credit partiel)(?!\w)")
_CONTRACT_DISPUTE = re.compile(
    r"(?<!\w)(?:contract dispute|disput\w* (?:over |about )?(?:the |our |my |this )?contract"
    r"|disputa (?:contractual|(?:del|de|sobre el|por el) contrato)"
    r"|impugna\w* (?:el |nuestro |este )?contrato|litige (?:contractuel|(?:sur|concernant)"
    r" (?:le |notre |ce )?contrat)|contest\w* (?:le |notre |ce )?contrat)(?!\w)"
)
_CANCEL = re.compile(
    r"(?<!\w)(?:cancell?ation|cancel(?:l?ing)? (?:my |our |the |this )?(?:subscription|account"
    r"|plan|contract|service|membership)|(?:want|like|need|wish) to cancel"
    r"|close (?:my |our )account|terminate (?:my |our |the )(?:subscription|contract|account)"
    r"|cancelacion|cancelar (?:mi |nuestra |nuestro |la |el )?(?:suscripcion|cuenta|plan"
    r"|contrato|servicio)|dar(?:nos|me)? de baja|annulation|annuler (?:mon |notre |l'|la |le )?"
    r"(?:abonnement|compte|contrat|souscription)|resili\w*|desabonner)(?!\w)"
)


# The largest amount a refund case holds (the column is NUMERIC(12, 2)); more is clamped.
MAX_AMOUNT = Decimal("9999999999.99")


@dataclass(frozen=True, slots=True)
class Amount:
    """A positive amount with the currency it was written in (None when none was written).

    ``clamped`` is True when the text said more than MAX_AMOUNT (``value`` is then
    MAX_AMOUNT): a defect to record, never a reason to fail.
    """

    value: Decimal
    currency: str | None
    clamped: bool = False


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """What a customer asks for: money back, cancellation or both, with the first amount."""

    refund: bool
    cancellation: bool
    amount: Amount | None
    partial_credit: bool = False  # "partial credit of $N"
    contract_dispute: bool = False

    @property
    def kind(self) -> RefundKind:
        """A partial credit, a cancellation only, or a refund (with or without cancelling)."""
        if self.partial_credit:
            return RefundKind.PARTIAL_CREDIT
        if self.cancellation and not (self.refund or self.contract_dispute):
            return RefundKind.CANCELLATION
        return RefundKind.REFUND


def parse_amount(text: str) -> Amount | None:
    """``text`` read as exactly one positive amount ("149.00", "$149", "149,00 €"), else None."""
    match = _AMOUNT_ONLY.fullmatch(text)
    if match is None or (match["before"] and match["after"]):
        return None
    return _amount(match["number"], match["before"] or match["after"])


def find_amount(text: str) -> Amount | None:
    """The first amount written with a currency in ``text``, e.g. "$149" or "149 USD"."""
    for match in _AMOUNT_IN_TEXT.finditer(text):
        found = _amount(match["n1"] or match["n2"], match["before"] or match["after"])
        if found is not None:
            return found
    return None


def detect_refund_request(subject: str, new_text: str) -> RefundRequest | None:
    """A refund, partial-credit, cancellation or contract-dispute request in English, Spanish
    or French, else None."""
    folded = fold_text(f"{subject}\n{new_text}")
    refund = _REFUND.search(folded) is not None
    cancellation = _CANCEL.search(folded) is not None
    partial = _PARTIAL_CREDIT.search(folded) is not None
    dispute = _CONTRACT_DISPUTE.search(folded) is not None
    if not (refund or cancellation or partial or dispute):
        return None
    amount = find_amount(f"{subject}\n{new_text}")
    return RefundRequest(refund, cancellation, amount, partial, dispute)


# --- cancellations and what the outcome does to the customer's data ---------------------------


def cancellation_effective(
    requested_on: dt.date,
    today: dt.date,
    written: dt.date | None,
    policy: RefundPolicy = DEFAULT_REFUND_POLICY,
) -> tuple[dt.date, int]:
    """The date a cancellation takes effect and the notice in days from the request.

    Without a date written, the notice is the policy's (7 days from the request, §6.1), and
    never a day before ``today``.
    """
    default = max(requested_on + dt.timedelta(days=policy.notice_days), today)
    effective = written or default
    return effective, (effective - requested_on).days


# Each outcome counts as one answer in the running mean of Satisfaction_Score (§6.2 step 5):
# a customer who leaves as the lowest score, a refund as a middling one.
_OUTCOME_SCORES = {True: 1, False: 3}
_CHURN_FLOORS = {True: ChurnRisk.HIGH, False: ChurnRisk.MEDIUM}
_CHURN_ORDER = (ChurnRisk.LOW, ChurnRisk.MEDIUM, ChurnRisk.HIGH)


def metrics_after_outcome(
    old_score: float | None,
    answers: int,
    cancellation: bool,
    on: dt.date,
    last_ticket: dt.date | None,
) -> CustomerMetrics:
    """The customer's Satisfaction_Score and Churn_Risk after an approved refund
    (``cancellation`` False) or a confirmed cancellation (§6.2 step 5).

    The outcome counts as one more answer (cancellation 1/5, refund 3/5) in the mean of
    ``answers`` earlier ones; Churn_Risk is then High after a cancellation and at least
    Medium after a refund.
    """
    metrics = updated_customer_metrics(
        old_score, answers, _OUTCOME_SCORES[cancellation], on, last_ticket
    )
    floor = _CHURN_FLOORS[cancellation]
    churn = max(metrics.churn_risk, floor, key=_CHURN_ORDER.index)
    return CustomerMetrics(metrics.satisfaction_score, churn, metrics.last_support_ticket)


def _amount(number: str, marker: str | None) -> Amount | None:
    value = Decimal(_plain_number(number))
    if value <= 0:
        return None
    key = marker.lower() if marker else None
    currency = _SYMBOLS.get(key or "") or _WORDS.get(key or "") or (marker or "").upper() or None
    if value > MAX_AMOUNT:
        return Amount(MAX_AMOUNT, currency, clamped=True)
    return Amount(value, currency)


def _plain_number(number: str) -> str:
    """ "1.234,56", "1,234.56", "1 234,56" and "149,5" as "1234.56" and "149.5"."""
    digits = "".join(ch for ch in number if ch not in _SPACES)
    separators = [ch for ch in digits if ch in ",."]
    if not separators:
        return digits
    last = separators[-1]
    decimals = len(digits) - digits.rindex(last) - 1
    if len(set(separators)) == 2 or (len(separators) == 1 and decimals <= 2):
        whole, _, fraction = digits.rpartition(last)
        return whole.replace(",", "").replace(".", "") + "." + fraction
    return digits.replace(",", "").replace(".", "")
