"""Ticket mail at intake (issues 3 and 5): acknowledgment in the customer's language, alerts,
the per-sender auto-reply budget, and exactly one acknowledgment however often mail repeats."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.outbound.deliver import renderer_for
from mailproc.outbound.outbox import materialize
from mailproc.processing.replay import ReplaySelection
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Event, Outbox


@pytest.fixture
def app(db_url: str, clock: FixedClock) -> Iterator[App]:
    settings = Settings.model_validate(
        {"database": {"url": db_url}, "processing": {"parse_workers": 0}}
    )
    application = App(settings, clock)
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    try:
        yield application
    finally:
        application.close()


def mail(sender: str, subject: str, body: str, *headers: str, mid: str) -> bytes:
    head = [
        f"From: {sender}",
        "To: support@dataflow.com",
        f"Subject: {subject}",
        f"Message-ID: <{mid}>",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()


def run(app: App, *raws: bytes) -> None:
    app.ingest(RawInput(raw, Envelope("smtp")) for raw in raws)
    app.process()


def render_pending(app: App) -> None:
    """Render queued mail as the deliverer would at its first attempt."""
    renderer = renderer_for(app.settings)
    with transaction(app.sessions) as session:
        for row in session.scalars(select(Outbox).where(Outbox.raw.is_(None))):
            materialize(session, row, renderer)


def outbox(app: App) -> list[Outbox]:
    render_pending(app)
    with transaction(app.sessions, commit=False) as session:
        rows = session.scalars(
            select(Outbox).options(selectinload(Outbox.recipients)).order_by(Outbox.id)
        ).all()
        session.expunge_all()
        return list(rows)


def to(row: Outbox) -> list[str]:
    return [recipient.address for recipient in row.recipients]


def parsed(row: Outbox):
    return message_from_bytes(row.raw, policy=policy.default)


def test_spanish_customer_gets_a_spanish_acknowledgment(app: App) -> None:
    run(
        app,
        mail(
            "María <maria@gruposierra.example>",
            "Los comentarios no cargan (COL-11001)",
            "Hola, los comentarios no cargan.",
            mid="es-1@gruposierra.example",
        ),
    )
    [ack] = [row for row in outbox(app) if row.template == "acknowledgment"]
    assert ack.locale == "es" and to(ack) == ["maria@gruposierra.example"]
    message = parsed(ack)
    assert message["Subject"].startswith("[Ticket #10001]")
    assert message["In-Reply-To"] == "<es-1@gruposierra.example>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Content-Language"] == "es"
    assert message["Reply-To"].addresses[0].addr_spec.startswith("support+10001-")
    text = message.get_body(("plain",)).get_content()
    assert "Gracias" in text and "COL-11001" in text


def test_non_enterprise_french_mail_gets_english_and_a_translation_flag(app: App) -> None:
    # 1001 is a Professional customer in the US whose stored preference is English.
    run(
        app,
        mail(
            "Laura <laura@northwind-analytics.example>",
            "Problème de connexion",
            "Bonjour, depuis ce matin la connexion à notre base de données échoue et "
            "les tableaux de bord ne se mettent plus à jour. Pouvez-vous nous aider ?",
            mid="fr-1@northwind-analytics.example",
        ),
    )
    rows = outbox(app)
    [ack] = [row for row in rows if row.template == "acknowledgment"]
    assert ack.locale == "en"
    alert = parsed(next(row for row in rows if row.template == "new_ticket_alert"))
    assert "translation" in alert.get_body(("plain",)).get_content().lower()
    with transaction(app.sessions, commit=False) as session:
        event = session.scalars(select(Event).where(Event.kind == "notify.ack_queued")).one()
        assert event.detail["translation_requested"] is True


def test_p0_alerts_leaders_and_triage_goes_to_the_manager(app: App) -> None:
    run(
        app,
        mail(
            "Priya <priya@harborline.example>",
            "Error 503: Service Unavailable",
            "All dashboards are down.",
            mid="p0@harborline.example",
        ),
    )
    templates = {row.template: row for row in outbox(app)}
    assert set(templates) >= {"acknowledgment", "new_ticket_alert", "p0_alert"}
    assert set(to(templates["p0_alert"])) == {
        "cto@dataflow.com",
        "support-director@dataflow.com",
    }
    assert to(templates["new_ticket_alert"]) == ["agents@dataflow.com"]


def test_acknowledgment_exactly_once_across_redelivery_and_replay(app: App) -> None:
    first = mail(
        "Laura <laura@northwind-analytics.example>",
        "DS-1001",
        "Invalid credentials.",
        mid="once@northwind-analytics.example",
    )
    run(app, first, first, b"Received: by relay.example\r\n" + first)
    app.replay(app.replay_ids(ReplaySelection(everything=True)), dry_run=False)
    acks = [row for row in outbox(app) if row.template == "acknowledgment"]
    assert len(acks) == 1


def test_storm_from_one_sender_is_held_to_the_budget(app: App) -> None:
    storm = [
        mail(
            "Bot <bot@spam.example>",
            f"Help {i}",
            f"message number {i}",
            mid=f"storm-{i}@spam.example",
        )
        for i in range(500)
    ]
    run(app, *storm)
    acks = [row for row in outbox(app) if row.template == "acknowledgment"]
    assert len(acks) == 3  # [auto_reply] max_per_sender default
    with transaction(app.sessions, commit=False) as session:
        suppressed = session.scalars(
            select(Event.reason).where(Event.kind == "notify.ack_suppressed")
        ).all()
    assert len(suppressed) == 497
    assert "suppressed: 3 automatic replies" in suppressed[0]


def test_automatic_mail_never_gets_an_acknowledgment(app: App) -> None:
    run(
        app,
        mail(
            "News <news@vendor.example>",
            "Digest",
            "news",
            "Precedence: bulk",
            mid="bulk@vendor.example",
        ),
    )
    assert [row.template for row in outbox(app)] == []  # bulk: no ticket, no alert


def test_agents_alert_lists_the_customers_recent_tickets(app: App) -> None:
    laura = "Laura <laura@northwind-analytics.example>"
    run(app, mail(laura, "DS-1001: Invalid Credentials", "We cannot connect.", mid="r1@n.example"))
    run(app, mail(laura, "Slow dashboard", "The sales dashboard is slow.", mid="r2@n.example"))
    alerts = [row for row in outbox(app) if row.template == "new_ticket_alert"]
    second = parsed(alerts[1]).get_body(("plain",)).get_content()
    assert "Recent tickets" in second and "#10001 new: DS-1001: Invalid Credentials" in second
    assert "Recent tickets" not in parsed(alerts[0]).get_body(("plain",)).get_content()
