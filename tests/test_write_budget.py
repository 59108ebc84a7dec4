"""Under ``serve`` on SQLite a write transaction is bounded by time as well as by count, and no
step inside it scans more of a huge reply than its understood part (issue 20, item 8)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select
from test_large_mail_transactions import ingest, mail, with_processing
from test_workflows import AGENTS, agent_reply, check, detail, mails, send

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.core import commands, survey
from mailproc.processing import batch
from mailproc.processing.budget import WriteBudget
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Ticket
from mailproc.workflows import agent_mail, surveys

TARGET_S = 0.25  # the tests' target (processing.budget.TARGET_S is the default)


def steps(seconds: float) -> Callable[[], float]:
    """A timer by which every transaction (one reading at its start, one after its commit)
    takes ``seconds``: the write step made slow or fast without waiting."""
    return itertools.count(0.0, seconds).__next__


def test_a_slow_transaction_makes_the_next_ones_smaller_then_they_grow_back() -> None:
    budget = WriteBudget(100, TARGET_S, steps(1.0))
    budget.record(100, budget.start())  # 1 s for 100: 25 would have fit in TARGET_S
    assert budget.limit == int(100 * TARGET_S)
    budget.record(10, budget.start())  # 1 s for 10: 2 fit
    assert budget.limit == 2
    budget.record(1, budget.start())
    assert budget.limit == 1  # one message at least
    fast = WriteBudget(100, TARGET_S, steps(TARGET_S / 4))
    fast.limit = 16
    fast.record(8, fast.start())  # not a full transaction: no growth
    assert fast.limit == 16
    grown = []
    for _ in range(30):
        fast.record(fast.limit, fast.start())
        grown.append(fast.limit)
    assert grown[:3] == [18, 20, 22]  # an eighth more each time, up to where it started
    assert grown[-1] == 100


def test_a_transaction_just_over_the_target_halves_the_next() -> None:
    budget = WriteBudget(100, TARGET_S, steps(TARGET_S * 1.1))
    budget.record(100, budget.start())
    assert budget.limit == 50
    budget = WriteBudget(100, TARGET_S, steps(TARGET_S * 0.9))
    budget.record(100, budget.start())  # within the target, not under half: unchanged
    assert budget.limit == 100


@pytest.mark.parametrize("workers", [0, 1])
def test_the_worker_splits_its_parts_when_transactions_are_slow(
    settings: Settings, clock: FixedClock, workers: int
) -> None:
    app = App(with_processing(settings, parse_workers=workers), clock)
    try:
        ids = ingest(app, [mail(n) for n in range(1, 31)])
        sizes: list[int] = []
        budget = WriteBudget(20, TARGET_S, steps(1.0))  # every transaction "takes" 1 s
        summary = app.process(sizes.append, batch_size=20, budget=budget)
        assert sizes == [20, 5, 1, 1, 1, 1, 1]  # read in parts of 20 and 10, written smaller
        assert summary.count("created") == 30
        assert sorted(o.inbound_id for o in summary.outcomes) == ids  # each once
        assert app.process(budget=budget).outcomes == []  # nothing left, nothing twice
    finally:
        app.close()


def test_fast_transactions_keep_the_parts_whole(settings: Settings, clock: FixedClock) -> None:
    app = App(with_processing(settings, parse_workers=0), clock)
    try:
        ingest(app, [mail(n) for n in range(1, 31)])
        sizes: list[int] = []
        budget = WriteBudget(20, TARGET_S, steps(TARGET_S / 4))
        assert app.process(sizes.append, batch_size=20, budget=budget).count("created") == 30
        assert sizes == [20, 10]
    finally:
        app.close()


BUDGET = 1024  # the smallest intake.max_understood_chars


@pytest.fixture
def app(db_url: str, clock: FixedClock) -> Iterator[App]:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "intake": {"max_understood_chars": BUDGET},
            "processing": {"parse_workers": 0},
            "identity": {"trusted_authserv_id": "mx.dataflow.com", "agents": AGENTS},
        }
    )
    application = App(settings, clock)
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    try:
        yield application
    finally:
        application.close()


def test_an_agents_reply_over_the_budget_is_read_on_its_understood_part_only(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command parser read the whole text in the transaction: a line far below the
    understood part (here a command, an error there) decided what happened."""
    read: list[int] = []

    def parse_seen(text: str) -> commands.ParsedCommands:
        read.append(len(text))
        return commands.parse_commands(text)

    monkeypatch.setattr(agent_mail, "parse_commands", parse_seen)
    send(app, "Laura Chen <laura@northwind-analytics.example>", "Sync down", "DS-1001", mid="a@x")
    body = "#priority P3\n\nHello Laura,\n" + "The export runs again.\n" * 200 + "#status closed"
    agent_reply(app, "Alex Agent <alex@dataflow.com>", 10001, body, mid="long@dataflow.com")
    assert read and max(read) <= BUDGET
    assert mails(app, "command_error", 10001) == []
    assert detail(app, 10001)["priority"] == "P3"
    [relayed] = mails(app, "agent_reply", 10001)
    assert relayed.raw is not None and b"#status closed" not in relayed.raw
    assert b"The export runs again." in relayed.raw


def test_a_survey_answer_over_the_budget_is_read_on_its_understood_part_only(
    app: App, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[int] = []

    def parse_seen(subject: str, text: str) -> survey.SurveyAnswer | None:
        read.append(len(text))
        return survey.parse_survey_reply(subject, text)

    monkeypatch.setattr(batch, "parse_survey_reply", parse_seen)
    monkeypatch.setattr(surveys, "parse_survey_reply", parse_seen)
    marcus = "Marcus Lee <marcus@cedarstone.example>"
    send(app, marcus, "DR-3003: Refresh Timeout", "It times out.", mid="1008@cedarstone.example")
    agent_reply(app, "Alex Agent <alex@dataflow.com>", 10001, "#status resolved", mid="r@x")
    check(app, clock, dt.timedelta(hours=25))
    [request] = mails(app, "survey_request", 10001)
    body = "5\n\n" + "Quick and kind, thank you.\n" * 200
    send(
        app,
        marcus,
        "Re: [Ticket #10001] How did we do?",
        body,
        f"In-Reply-To: <{request.message_id}>",
        mid="answer@cedarstone.example",
    )
    assert len(read) == 2 and max(read) <= BUDGET  # the check, then the recording
    with transaction(app.sessions, commit=False) as session:
        score = session.scalar(select(Ticket.survey_score).where(Ticket.number == 10001))
    assert score == 5
