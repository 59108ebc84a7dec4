"""Issue 17, the knowledge base by mail (§9): recurring issue → draft → review → publish → use.

Real mail in (agents authenticated as in production), the outbox rendered as the deliverer
would, an advancing clock and the scheduler's `check`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.kb.deflection import deflection_report
from mailproc.outbound.deliver import renderer_for
from mailproc.outbound.outbox import materialize
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import KbArticle, Outbox, Ticket

AUTH = "Authentication-Results: mx.dataflow.com; dmarc=pass header.from=dataflow.com"
AGENTS = [
    {"name": "Alex Agent", "roles": ["agent"], "addresses": ["alex@dataflow.com"]},
    {"name": "Marta Manager", "roles": ["support_manager"], "addresses": ["marta@dataflow.com"]},
]
KB = "kb@dataflow.com"
RATE_LIMIT = "Our nightly export fails with API-4004 Too many requests since Monday."
NEW_STEPS = "1. Lower the export's parallel workers to 2.\n2. Schedule it after 02:00 UTC."
NEW_STEPS_ES = (
    "1. Reduzca los procesos paralelos de la exportación a 2.\n"
    "2. Prográmela después de las 02:00 UTC."
)


@pytest.fixture
def app(db_url: str, clock: FixedClock) -> Iterator[App]:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
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


def send(app: App, sender: str, subject: str, body: str, *headers: str, to: str = "") -> None:
    send.count = getattr(send, "count", 0) + 1  # type: ignore[attr-defined]
    head = [
        f"From: {sender}",
        f"To: {to or 'support@dataflow.com'}",
        f"Subject: {subject}",
        f"Message-ID: <kb-{send.count}-{id(app)}@test.example>",  # type: ignore[attr-defined]
        *headers,
    ]
    raw = ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()
    app.ingest([RawInput(raw, Envelope("smtp"))])
    app.process()


def mails(app: App, template: str) -> list[Outbox]:
    renderer = renderer_for(app.settings)
    with transaction(app.sessions) as session:
        for row in session.scalars(select(Outbox).where(Outbox.raw.is_(None))):
            materialize(session, row, renderer)
    with transaction(app.sessions, commit=False) as session:
        query = select(Outbox).options(selectinload(Outbox.recipients))
        rows = list(session.scalars(query.where(Outbox.template == template).order_by(Outbox.id)))
        session.expunge_all()
        return rows


def text(row: Outbox) -> str:
    assert row.raw is not None
    from email import message_from_bytes, policy

    message = message_from_bytes(row.raw, policy=policy.default)
    body = message.get_body(("plain",))
    assert body is not None
    return f"Subject: {message['Subject']}\nReply-To: {message['Reply-To']}\n{body.get_content()}"


def to(row: Outbox) -> set[str]:
    return {r.address for r in row.recipients}


def ack_for(app: App, sender: str) -> str:
    [row] = [r for r in mails(app, "acknowledgment") if sender in to(r)][-1:]
    return text(row)


def agent_on_ticket(app: App, number: int, body: str, sender: str = "alex@dataflow.com") -> None:
    """An agent's reply on a ticket, threaded by its subject tag (agents are participants)."""
    send(app, sender, f"Re: [Ticket #{number}] export", body, AUTH)


def to_kb(app: App, sender: str, subject: str, body: str) -> None:
    send(app, sender, subject, body, AUTH, to=KB)


def articles(app: App, key: str) -> list[tuple[str, str, dict[str, list[str]]]]:
    with transaction(app.sessions, commit=False) as session:
        rows = session.scalars(select(KbArticle).where(KbArticle.key == key).order_by(KbArticle.id))
        return [(a.status, a.visibility, dict(a.steps)) for a in rows]


def test_the_whole_loop_by_mail(app: App, clock: FixedClock) -> None:
    for index in range(11):  # §9.2.1: more than 10 tickets a month for API-4004
        send(app, f"dev{index}@northwind-analytics.example", "Export failing", RATE_LIMIT)
    app.check(clock.now(), dry_run=False)
    app.check(clock.now() + dt.timedelta(minutes=5), dry_run=False)  # once per code and month
    [alert] = mails(app, "kb_alert")
    assert to(alert) == {"marta@dataflow.com", "support-manager@dataflow.com"}
    body = text(alert)
    assert "API-4004: 11 tickets this month (2026-11)" in body
    assert "It has no reviewed article yet." in body
    assert "#kb draft API-4004" in body and KB in body

    # an hour later an agent resolves a ticket with the fix, then drafts the article from it
    clock.advance(dt.timedelta(hours=1))
    agent_on_ticket(app, 10001, f"#status resolved\n\n{NEW_STEPS}")
    agent_on_ticket(app, 10001, "#kb draft API-4004")
    [(seed_status, _, _), (status, visibility, steps)] = articles(app, "API-4004")
    assert (seed_status, status, visibility) == ("published", "in_review", "public")
    assert steps == {
        "en": ["Lower the export's parallel workers to 2.", "Schedule it after 02:00 UTC."]
    }
    [review] = mails(app, "kb_review")
    assert to(review) == {"marta@dataflow.com", "support-manager@dataflow.com"}
    review_text = text(review)
    assert "[KB API-4004] Please review: Too many requests" in review_text
    assert f"Reply-To: DataFlow Support <{KB}>" in review_text
    assert "1. Lower the export's parallel workers to 2." in review_text

    # the Spanish version by replying to the review mail; an agent may not publish
    to_kb(
        app,
        "alex@dataflow.com",
        "Re: [KB API-4004] Please review",
        f"#kb update es\n\n{NEW_STEPS_ES}",
    )
    to_kb(app, "alex@dataflow.com", "Re: [KB API-4004] Please review", "#kb publish")
    [error] = mails(app, "command_error")
    assert to(error) == {"alex@dataflow.com"}
    assert "only a Support Manager may publish an article" in text(error)
    assert articles(app, "API-4004")[1][0] == "in_review"

    to_kb(app, "marta@dataflow.com", "Re: [KB API-4004] Please review", "#kb publish")
    [(old, _, _), (new, _, steps)] = articles(app, "API-4004")
    assert (old, new) == ("retired", "published") and set(steps) == {"en", "es"}
    published = mails(app, "kb_review")[-1]
    assert "Published: Too many requests" in text(published)
    assert "alex@dataflow.com" in to(published)

    # the next acknowledgment quotes the new steps in Spanish (Enterprise, Mexico)
    send(app, "maria@gruposierra.example", "Error de exportación", RATE_LIMIT)
    spanish = ack_for(app, "maria@gruposierra.example")
    assert "1. Reduzca los procesos paralelos de la exportación a 2." in spanish
    assert "Check the X-RateLimit-Remaining" not in spanish
    assert "Revise los encabezados" not in spanish  # the old catalog steps are gone
    # French has no version yet: English with a note (Enterprise, France, French; §5.4)
    send(app, "antoine@banqueriviere.example", "Export", RATE_LIMIT)
    french = ack_for(app, "antoine@banqueriviere.example")
    assert "1. Lower the export's parallel workers to 2." in french
    assert "pas encore disponible dans votre langue" in french

    # a month later, fewer tickets: the deflection table shows before and after
    clock.advance(dt.timedelta(days=20))
    send(app, "dev0@northwind-analytics.example", "Export failing again", RATE_LIMIT)
    clock.advance(dt.timedelta(days=10))
    with transaction(app.sessions, commit=False) as session:
        report = deflection_report(session, app.settings.kb.monthly_target, clock.now())
    [row] = [r for r in report.rows if r.key == "API-4004"]
    assert (row.before, row.after) == (11, 3.0)
    assert row.reduction == pytest.approx(1 - 3 / 11)
    assert report.published[-1] == ("2026-11", 1) and report.target == 10
    # the quarterly report (§10.2) quotes the same figures
    from mailproc.reports.mailing import build_page
    from mailproc.reports.periods import PeriodKind, choose_period

    utc = ZoneInfo("UTC")
    quarter = choose_period(clock.now(), utc, clock.now().date(), None, PeriodKind.QUARTER)
    with transaction(app.sessions, commit=False) as session:
        page = build_page(
            session, quarter, clock.now(), content_id_domain="test.example", kb_target=10
        )
    assert "API-4004, 2026-11-27: 11 tickets per 30 days before, 3.0 after (73% fewer)" in page.text
    assert "Articles published per month (target 10): 2026-11 1" in page.text
    assert "<td>API-4004</td><td>2026-11-27</td>" in page.html


def test_internal_articles_never_reach_a_customer(app: App, clock: FixedClock) -> None:
    send(app, "laura@northwind-analytics.example", "DS-1002 timeout", "Connection timeout DS-1002.")
    agent_on_ticket(app, 10001, "Rotate the bastion's SSH key, then reconnect.")
    agent_on_ticket(app, 10001, "#kb draft DS-1002 internal")
    to_kb(app, "marta@dataflow.com", "publish", "#kb publish DS-1002")
    assert [a[:2] for a in articles(app, "DS-1002")] == [
        ("retired", "public"),
        ("published", "internal"),
    ]
    assert "Internal article" in text(mails(app, "kb_review")[0])
    send(app, "oliver@thamesvalleyenergy.example", "Timeout", "We get DS-1002 every hour.")
    ack = ack_for(app, "oliver@thamesvalleyenergy.example")
    assert "DS-1002" in ack
    assert "bastion" not in ack and "troubleshooting guide" not in ack
    assert "Check that the database or API host" not in ack  # nor the retired public steps


@pytest.mark.parametrize(
    ("sender", "body", "problem"),
    [
        ("alex@dataflow.com", "#kb draft ZZ-9999\n\nStep one.", "unknown error code ZZ-9999"),
        ("alex@dataflow.com", "#kb draft API-4004", "no steps to write"),
        ("alex@dataflow.com", "#kb publish API-4004", "only a Support Manager may publish"),
        ("marta@dataflow.com", "#kb publish API-4004", "API-4004 has no draft to publish"),
        ("alex@dataflow.com", "#kb draft API-4004\n\nStep one.", "already has a draft in_review"),
    ],
)
def test_bad_commands_get_an_error_mail_and_change_nothing(
    app: App, sender: str, body: str, problem: str
) -> None:
    if "already" in problem:
        to_kb(app, "alex@dataflow.com", "draft", "#kb draft API-4004\n\nFirst draft.")
    before = articles(app, "API-4004"), articles(app, "ZZ-9999")
    to_kb(app, sender, "kb", body)
    [error] = mails(app, "command_error")
    assert to(error) == {sender} and problem in text(error)
    assert (articles(app, "API-4004"), articles(app, "ZZ-9999")) == before
    with transaction(app.sessions, commit=False) as session:
        assert session.scalars(select(Ticket)).first() is None  # KB mail opens no ticket


def test_cli_seeds_lists_exports_and_reports(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from mailproc.cli.root import cli

    monkeypatch.setenv("MAILPROC_DATABASE_URL", db_url)
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0  # the catalog becomes articles
    listed = runner.invoke(cli, ["kb", "list"])
    assert listed.exit_code == 0 and "API-4004     published  public" in listed.output
    exported = runner.invoke(cli, ["kb", "export", "--locale", "es", "--format", "html"])
    assert "<h2>API-4004: Demasiadas solicitudes</h2><ol><li>Revise" in exported.output
    report = runner.invoke(cli, ["kb", "deflection"])
    assert report.exit_code == 0 and report.output.startswith("key")
    unknown = runner.invoke(cli, ["kb", "show", "ZZ-9999"])
    assert unknown.exit_code != 0 and "no article for ZZ-9999" in unknown.output


def test_an_alert_with_no_article_published_within_five_days_reminds_the_managers_once(
    app: App, clock: FixedClock
) -> None:
    for index in range(11):
        send(app, f"dev{index}@northwind-analytics.example", "Export failing", RATE_LIMIT)
    app.check(clock.now(), dry_run=False)
    clock.advance(dt.timedelta(days=4, hours=23))
    app.check(clock.now(), dry_run=False)  # not yet five days
    assert len(mails(app, "kb_alert")) == 1
    clock.advance(dt.timedelta(hours=2))
    app.check(clock.now(), dry_run=False)
    app.check(clock.now() + dt.timedelta(hours=1), dry_run=False)  # once
    alert, reminder = mails(app, "kb_alert")
    assert to(reminder) == to(alert)
    assert "API-4004" in text(reminder) and reminder.message_id != alert.message_id


def test_a_published_article_stops_the_reminder(app: App, clock: FixedClock) -> None:
    for index in range(11):
        send(app, f"dev{index}@northwind-analytics.example", "Export failing", RATE_LIMIT)
    app.check(clock.now(), dry_run=False)
    clock.advance(dt.timedelta(days=1))
    to_kb(app, "alex@dataflow.com", "draft", f"#kb draft API-4004\n\n{NEW_STEPS}")
    to_kb(app, "marta@dataflow.com", "publish", "#kb publish API-4004")
    clock.advance(dt.timedelta(days=5))
    app.check(clock.now(), dry_run=False)
    assert len(mails(app, "kb_alert")) == 1


def test_cli_drafts_from_a_resolved_ticket(
    app: App, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from mailproc.cli.root import cli

    send(app, "laura@northwind-analytics.example", "Export failing", RATE_LIMIT)
    agent_on_ticket(app, 10001, f"#status resolved\n\n{NEW_STEPS}")
    monkeypatch.setenv("MAILPROC_DATABASE_URL", db_url)
    runner = CliRunner()
    args = ["kb", "draft", "API-4004", "--from-ticket", "10001", "--as", "alex@dataflow.com"]
    monkeypatch.setenv("MAILPROC_IDENTITY_AGENTS", __import__("json").dumps(AGENTS))
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    [*_, (status, visibility, steps)] = articles(app, "API-4004")
    assert (status, visibility) == ("in_review", "public")
    assert steps["en"][0] == "Lower the export's parallel workers to 2."
    unknown = runner.invoke(
        cli, ["kb", "draft", "API-4004", "--from-ticket", "99999", "--as", "alex@dataflow.com"]
    )
    assert unknown.exit_code != 0


def test_in_one_batch_acknowledgments_quote_the_article_as_it_is_at_their_turn(
    app: App,
) -> None:
    """A batch reads each quoted article once; a publish in the same batch is seen at once."""
    to_kb(app, "alex@dataflow.com", "draft", f"#kb draft API-4004\n\n{NEW_STEPS}")
    batch = [
        ("laura@northwind-analytics.example", "support@dataflow.com", RATE_LIMIT, ()),
        ("marta@dataflow.com", KB, "#kb publish API-4004", (AUTH,)),
        ("oliver@thamesvalleyenergy.example", "support@dataflow.com", RATE_LIMIT, ()),
    ]
    for index, (sender, to_address, body, headers) in enumerate(batch):
        head = [
            f"From: {sender}",
            f"To: {to_address}",
            "Subject: API-4004 again",
            f"Message-ID: <kb-batch-{index}-{id(app)}@test.example>",
            *headers,
        ]
        app.ingest(
            [RawInput(("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode(), Envelope("smtp"))]
        )
    summary = app.process()
    assert len(summary.outcomes) == 3
    before = ack_for(app, "laura@northwind-analytics.example")
    after = ack_for(app, "oliver@thamesvalleyenergy.example")
    assert "X-RateLimit-Remaining" in before and "parallel workers" not in before
    assert "Lower the export's parallel workers to 2." in after
    assert "X-RateLimit-Remaining" not in after
