"""Satisfaction surveys (§8): when to send, reading answers, low-score actions, customer metrics."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from mailproc.core.business_calendar import as_utc
from mailproc.core.model import Plan

MIN_SCORE, MAX_SCORE = 1, 5

# "Score: 4", "rating 4/5", "puntuación: 4 de 5", "note : 2", "4/5", "4 - ok", "4".
# Unambiguous labels may be followed by any comment; "note", "nota" and "satisfaction" (common
# words) and a bare number need a separator or the end of the line ("Note: 3 users affected"
# is not a score).
_STRONG_LABEL = (
    r"(?:satisfaction\s+)?(?:score|rating)"
    r"|(?:puntuaci[oó]n|calificaci[oó]n|valoraci[oó]n|nota)\s+de\s+satisfacci[oó]n"
    r"|puntuaci[oó]n|calificaci[oó]n|valoraci[oó]n"
    r"|note\s+de\s+satisfaction|[ée]valuation"
)
_WEAK_LABEL = r"note|nota|satisfaction"
_OUT_OF_FIVE = r"\s*/\s*5|\s+(?:out\s+of|of|de|sobre|sur)\s+(?:5|five|cinco|cinq)(?!\w)"
_SCORE_LINE = re.compile(
    rf"\s*(?:(?:(?P<strong>{_STRONG_LABEL})|(?P<weak>{_WEAK_LABEL}))\s*(?:[:=]\s*)?)?"
    rf"(?P<score>\d{{1,3}})(?P<of>{_OUT_OF_FIVE})?(?!\d|[.,]\d|\s*/)(?P<rest>.*)",
    re.IGNORECASE,
)
# The one-click survey link's subject keeps "N/5" in every language ("Satisfaction score: 4/5").
_SUBJECT_SCORE = re.compile(r"(?<![\d#/])(\d)\s*/\s*5(?![\d/])")
_SEPARATORS = "-–—:.,;!)"
_COMMENT_LABEL = re.compile(
    r"^\s*(?:comments?|comentarios?|commentaires?)\s*(?:\((?:optional|opcional|facultatif)\)\s*)?"
    r":\s*",
    re.IGNORECASE,
)


class ChurnRisk(StrEnum):
    """The customer's churn risk as the customer data spells it."""

    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"


@dataclass(frozen=True, slots=True)
class SurveyPolicy:
    """When surveys go out and what a low score sets off (§8.1, §8.1 edge case)."""

    send_after: dt.timedelta = dt.timedelta(hours=24)
    low_below: int = 3
    follow_up_within: dt.timedelta = dt.timedelta(hours=12)
    credit_plans: frozenset[Plan] = frozenset({Plan.ENTERPRISE})
    low_score_credit: Decimal = Decimal(100)
    high_churn_below: float = 3.0
    medium_churn_below: float = 3.8


DEFAULT_SURVEY_POLICY = SurveyPolicy()


@dataclass(frozen=True, slots=True)
class SurveyAnswer:
    """A score from 1 to 5 and the customer's comment ("" when none)."""

    score: int
    comment: str


@dataclass(frozen=True, slots=True)
class LowScoreActions:
    """For a score below 3: escalate to the Support Manager by ``manager_due`` (low_score_alert)
    and send Template 5 (low_satisfaction_followup) with ``credit`` when there is one."""

    score: int
    manager_due: dt.datetime
    credit: Decimal | None
    reason: str


@dataclass(frozen=True, slots=True)
class CustomerMetrics:
    """The customer-data columns a survey answer updates (§6.2, §7.1, §8.1)."""

    satisfaction_score: float
    churn_risk: ChurnRisk
    last_support_ticket: dt.date


def survey_due(
    resolved_at: dt.datetime, policy: SurveyPolicy = DEFAULT_SURVEY_POLICY
) -> dt.datetime:
    """When the survey of a ticket resolved at ``resolved_at`` goes out (UTC)."""
    return as_utc(resolved_at) + policy.send_after


def parse_survey_reply(subject: str, new_text: str) -> SurveyAnswer | None:
    """The score and comment of a survey reply, or None when it holds no score.

    The score is read from the first non-blank line of the new text, else from the "N/5" of
    the subject (the one-click link); the first line wins when both have one.
    """
    lines = new_text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    match = _SCORE_LINE.fullmatch(lines[first]) if first < len(lines) else None
    if match is not None:
        rest = match["rest"].strip()
        if match["strong"] or match["of"] or not rest or rest[0] in _SEPARATORS:
            score = int(match["score"])
            if not MIN_SCORE <= score <= MAX_SCORE:
                return None
            return SurveyAnswer(score, _comment([rest.lstrip(_SEPARATORS), *lines[first + 1 :]]))
    in_subject = _SUBJECT_SCORE.search(subject)
    if in_subject is None or not MIN_SCORE <= int(in_subject[1]) <= MAX_SCORE:
        return None
    return SurveyAnswer(int(in_subject[1]), _comment(lines))


def low_score_actions(
    score: int,
    plan: Plan,
    answered_at: dt.datetime,
    policy: SurveyPolicy = DEFAULT_SURVEY_POLICY,
) -> LowScoreActions | None:
    """What a score sets off: None from 3 up; below, a manager follow-up and maybe a credit."""
    _check(score)
    if score >= policy.low_below:
        return None
    credit = policy.low_score_credit if plan in policy.credit_plans else None
    due = as_utc(answered_at) + policy.follow_up_within
    reason = (
        f"score {score}/5 is below {policy.low_below}: Support Manager follow-up due"
        f" {due:%Y-%m-%d %H:%M} UTC and Template 5 (§8.1)"
    )
    if credit is not None:
        reason += f"; {plan} customer: {credit} credit (§8.1 edge case)"
    return LowScoreActions(score, due, credit, reason)


def churn_risk(
    satisfaction: float, latest: int | None = None, policy: SurveyPolicy = DEFAULT_SURVEY_POLICY
) -> ChurnRisk:
    """High below 3.0, Medium below 3.8, else Low; a latest score below 3 is at least Medium."""
    if satisfaction < policy.high_churn_below:
        return ChurnRisk.HIGH
    if satisfaction < policy.medium_churn_below or (
        latest is not None and latest < policy.low_below
    ):
        return ChurnRisk.MEDIUM
    return ChurnRisk.LOW


def updated_customer_metrics(
    old_score: float | None,
    answers: int,
    new_score: int,
    ticket_date: dt.date,
    last_ticket: dt.date | None = None,
    policy: SurveyPolicy = DEFAULT_SURVEY_POLICY,
) -> CustomerMetrics:
    """The customer's metrics after one more survey answer.

    Satisfaction_Score is the running mean of the answers, to one decimal; ``answers`` is how
    many answers ``old_score`` averages (an imported score with no history counts as one).
    Last_Support_Ticket is the later of ``last_ticket`` and ``ticket_date``.
    """
    _check(new_score)
    if answers < 0:
        raise ValueError(f"answers must be 0 or more, got {answers}")
    if old_score is None or answers == 0:
        mean = Decimal(new_score)
    else:
        total = Decimal(str(old_score)) * answers + new_score
        mean = (total / (answers + 1)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    score = float(mean)
    return CustomerMetrics(
        satisfaction_score=score,
        churn_risk=churn_risk(score, new_score, policy),
        last_support_ticket=max(ticket_date, last_ticket or ticket_date),
    )


def _check(score: int) -> None:
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise ValueError(f"a survey score is {MIN_SCORE} to {MAX_SCORE}, got {score}")


def _comment(lines: list[str]) -> str:
    kept = [_COMMENT_LABEL.sub("", line).rstrip() for line in lines]
    return "\n".join(kept).strip()
