"""Surveys (§8): timing, answers in en/es/fr and by the one-click link, low scores, metrics."""

from __future__ import annotations

import datetime as dt
import re
import string
import time
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailproc.core.customers_csv import parse_customers_csv
from mailproc.core.locale_policy import SUPPORTED_LOCALES
from mailproc.core.model import Plan
from mailproc.core.survey import (
    ChurnRisk,
    CustomerMetrics,
    LowScoreActions,
    SurveyAnswer,
    SurveyPolicy,
    churn_risk,
    low_score_actions,
    parse_survey_reply,
    survey_due,
    updated_customer_metrics,
)
from mailproc.outbound.render import Renderer
from mailproc.outbound.samples import SAMPLES
from mailproc.resources import resource_path

T0 = dt.datetime(2026, 11, 26, 16, 30, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
HIGH, MEDIUM, LOW = ChurnRisk.HIGH, ChurnRisk.MEDIUM, ChurnRisk.LOW


def test_survey_goes_out_24_hours_after_resolution() -> None:
    assert survey_due(T0) == T0 + 24 * HOUR
    assert survey_due(T0, SurveyPolicy(send_after=2 * HOUR)) == T0 + 2 * HOUR
    with pytest.raises(ValueError, match="naive"):
        survey_due(T0.replace(tzinfo=None))


# (what, subject, new text, answer)
REPLIES = [
    ("bare digit", "Re: How Did We Do?", "4", SurveyAnswer(4, "")),
    (
        "digit then comment lines",
        "Re: survey",
        "5\n\nQuick and friendly.",
        SurveyAnswer(5, "Quick and friendly."),
    ),
    ("rating: 4", "", "rating: 4", SurveyAnswer(4, "")),
    ("4/5", "", "4/5\nGood, but slow at first.", SurveyAnswer(4, "Good, but slow at first.")),
    (
        "§8 use case 1008: 2/5 with a comment",
        "",
        "Score: 2 - too slow",
        SurveyAnswer(2, "too slow"),
    ),
    ("out of five", "", "3 out of 5. It took two days.", SurveyAnswer(3, "It took two days.")),
    ("label without colon, any comment", "", "Rating 4 great job", SurveyAnswer(4, "great job")),
    (
        "separator after a bare digit",
        "",
        "1 – nobody called back",
        SurveyAnswer(1, "nobody called back"),
    ),
    ("Spanish label", "", "puntuación: 4", SurveyAnswer(4, "")),
    ("Spanish, de 5", "", "Calificación: 2 de 5 - muy lento", SurveyAnswer(2, "muy lento")),
    ("Spanish, unaccented", "", "Puntuacion 5", SurveyAnswer(5, "")),
    ("French note", "", "note : 2", SurveyAnswer(2, "")),
    ("French sur 5", "", "Note : 4 sur 5\nMerci !", SurveyAnswer(4, "Merci !")),
    (
        "one-click link, comment under the label",
        "Re: [Ticket #12345] Satisfaction score: 2/5",
        "2\n\nComments (optional):\nThe agent never called back.",
        SurveyAnswer(2, "The agent never called back."),
    ),
    (
        "one-click link, digit deleted: the subject gives the score",
        "[Ticket #12345] Satisfaction score: 2/5",
        "Comments (optional): slow",
        SurveyAnswer(2, "slow"),
    ),
    (
        "one-click link in Spanish",
        "[Ticket #7] Puntuación de satisfacción: 5/5",
        "5\n\nComentarios (opcional):\n¡Excelente!",
        SurveyAnswer(5, "¡Excelente!"),
    ),
    (
        "one-click link in French, nothing written",
        "[Ticket #7] Note de satisfaction\u00a0: 3/5",
        "",
        SurveyAnswer(3, ""),
    ),
    (
        "the written score wins over the link's",
        "[Ticket #7] Satisfaction score: 5/5",
        "3\nchanged my mind",
        SurveyAnswer(3, "changed my mind"),
    ),
]


@pytest.mark.parametrize(
    ("subject", "text", "expected"), [r[1:] for r in REPLIES], ids=[r[0] for r in REPLIES]
)
def test_parse_survey_reply(subject: str, text: str, expected: SurveyAnswer) -> None:
    assert parse_survey_reply(subject, text) == expected


@pytest.mark.parametrize(
    ("subject", "text"),
    [
        ("Re: How Did We Do?", "The error is back: DB-2002 again."),
        ("", "2 dashboards are down again"),  # a count, not a score
        ("", "Note: 3 users are affected"),  # "note" is a common word
        ("", "4.5"),
        ("", "4,5"),
        ("", "8/10"),
        ("", "6"),
        ("", "0 - awful"),
        ("", "rating: 7"),
        ("", "4/5/2026 the sync failed"),  # a date
        ("[Ticket #3] Re: error 404", "see above"),  # ticket number and status code
        ("Satisfaction score: 9/5", ""),
    ],
)
def test_not_a_survey_answer(subject: str, text: str) -> None:
    assert parse_survey_reply(subject, text) is None


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_one_click_link_reads_back(locale: str) -> None:
    """The rendered survey's mailto links (subject and body) parse to their own score."""
    mail = Renderer().render(SAMPLES["survey_request"], locale)
    links = re.findall(r"mailto:\S+", mail.text)
    assert len(links) == 5
    for link, score in zip(links, (5, 4, 3, 2, 1), strict=True):
        query = parse_qs(urlsplit(link).query)
        subject, body = query["subject"][0], query["body"][0]
        assert parse_survey_reply(f"Re: {subject}", body) == SurveyAnswer(score, "")
        assert parse_survey_reply(subject, "") == SurveyAnswer(score, "")


@given(
    st.integers(1, 5),
    st.sampled_from(["Score", "rating", "Puntuación", "Note", "note de satisfaction"]),
    st.text(st.sampled_from(string.ascii_letters + string.digits + " éñ¿?'/"), max_size=40),
)
def test_labelled_score_and_comment_round_trip(score: int, label: str, comment: str) -> None:
    assert parse_survey_reply("", f"{label}: {score} - {comment}") == SurveyAnswer(
        score, comment.strip()
    )


# --- low scores ------------------------------------------------------------------------------

LOW_SCORES = [
    ("§8 use case 1008 (Professional) rates 2/5", 2, Plan.PROFESSIONAL, None),
    ("§8 edge case 1033 (Enterprise) under 3: $100 credit", 2, Plan.ENTERPRISE, Decimal(100)),
    ("Enterprise 1/5", 1, Plan.ENTERPRISE, Decimal(100)),
    ("Starter 1/5", 1, Plan.STARTER, None),
]


@pytest.mark.parametrize(
    ("score", "plan", "credit"), [c[1:] for c in LOW_SCORES], ids=[c[0] for c in LOW_SCORES]
)
def test_low_score_actions(score: int, plan: Plan, credit: Decimal | None) -> None:
    actions = low_score_actions(score, plan, T0)
    assert actions is not None
    assert actions.manager_due == T0 + 12 * HOUR
    assert actions.credit == credit
    assert f"{score}/5" in actions.reason
    assert ("credit" in actions.reason) is (credit is not None)


@pytest.mark.parametrize("score", [3, 4, 5])
@pytest.mark.parametrize("plan", list(Plan))
def test_three_and_up_set_off_nothing(score: int, plan: Plan) -> None:
    assert low_score_actions(score, plan, T0) is None


def test_credit_and_delay_are_parameters() -> None:
    policy = SurveyPolicy(low_score_credit=Decimal(150), follow_up_within=6 * HOUR)
    assert low_score_actions(2, Plan.ENTERPRISE, T0, policy) == LowScoreActions(
        2,
        T0 + 6 * HOUR,
        Decimal(150),
        "score 2/5 is below 3: Support Manager follow-up due 2026-11-26 22:30 UTC and"
        " Template 5 (§8.1); Enterprise customer: 150 credit (§8.1 edge case)",
    )


@pytest.mark.parametrize("score", [0, 6, -1])
def test_scores_outside_1_to_5_are_refused(score: int) -> None:
    with pytest.raises(ValueError, match="1 to 5"):
        low_score_actions(score, Plan.STARTER, T0)
    with pytest.raises(ValueError, match="1 to 5"):
        updated_customer_metrics(4.0, 1, score, T0.date())


# --- customer metrics ------------------------------------------------------------------------


def test_churn_rule_matches_every_sample_customer() -> None:
    text = (resource_path("data") / "customers_sample.csv").read_text("utf-8")
    customers = parse_customers_csv(text).customers
    assert len(customers) == 50
    for customer in customers:
        assert customer.satisfaction_score is not None
        assert churn_risk(customer.satisfaction_score) == customer.churn_risk, customer.id


D1, D2 = dt.date(2026, 7, 16), dt.date(2026, 11, 26)
# (what, old score, answers behind it, new score, ticket date, previous last ticket, expected)
METRICS = [
    ("first answer", None, 0, 4, D2, None, CustomerMetrics(4.0, LOW, D2)),
    ("no history count: the new score", 3.9, 0, 2, D2, D1, CustomerMetrics(2.0, HIGH, D2)),
    ("1008: 2.0 then 2/5", 2.0, 1, 2, D2, D1, CustomerMetrics(2.0, HIGH, D2)),
    ("mean to one decimal", 3.9, 1, 4, D2, D1, CustomerMetrics(4.0, LOW, D2)),  # 3.95 rounds up
    ("a low answer is at least Medium", 4.8, 9, 1, D2, D1, CustomerMetrics(4.4, MEDIUM, D2)),
    ("mean below 3.8 is Medium", 3.8, 3, 3, D2, D1, CustomerMetrics(3.6, MEDIUM, D2)),
    ("1033: Enterprise 2.5 then 2/5", 2.5, 2, 2, D2, D1, CustomerMetrics(2.3, HIGH, D2)),
    (
        "an old ticket's survey keeps the later date",
        4.0,
        1,
        5,
        D1,
        D2,
        CustomerMetrics(4.5, LOW, D2),
    ),
]


@pytest.mark.parametrize(
    ("old", "answers", "new", "ticket_date", "last", "expected"),
    [m[1:] for m in METRICS],
    ids=[m[0] for m in METRICS],
)
def test_updated_customer_metrics(
    old: float | None,
    answers: int,
    new: int,
    ticket_date: dt.date,
    last: dt.date | None,
    expected: CustomerMetrics,
) -> None:
    assert updated_customer_metrics(old, answers, new, ticket_date, last) == expected


def test_negative_history_is_refused() -> None:
    with pytest.raises(ValueError, match="answers"):
        updated_customer_metrics(4.0, -1, 4, D2)


@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=40),
)
def test_running_mean_tracks_the_true_mean(scores: list[int]) -> None:
    score: float | None = None
    for count, new in enumerate(scores):
        metrics = updated_customer_metrics(score, count, new, D2)
        score = metrics.satisfaction_score
        assert 1.0 <= score <= 5.0
        assert metrics.churn_risk is churn_risk(score, new)
    assert score is not None
    assert abs(score - sum(scores) / len(scores)) <= 0.05 * len(scores)


@pytest.mark.parametrize(
    "line",
    [
        "Score" + " " * 20_000 + "x",
        "4" + " " * 20_000 + "/" + " " * 20_000 + "6",
        "comments (optional)" + " " * 20_000 + "x",
        "puntuacion" + " " * 20_000 + "de" + " " * 20_000 + "x",
        "1" * 20_000,
    ],
)
def test_long_hostile_lines_are_read_in_linear_time(line: str) -> None:
    started = time.perf_counter()
    parse_survey_reply(line, f"{line}\n{line}")
    assert time.perf_counter() - started < 0.5
