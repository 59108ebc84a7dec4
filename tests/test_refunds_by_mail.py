"""Issue 15 part 4: refunds, partial credits and cancellations by mail (§6.1-§6.3).

Mail in, the composed mail out (en, es, fr), the customer's data and Finance's ledger after."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import select
from test_agents_by_mail import composed, run_cli, text_of
from test_workflows import AGENTS, agent_reply, detail, mails, send, to

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Credit, RefundCaseRecord

ALEX = "Alex Agent <alex@dataflow.com>"
MARTA = "Marta Manager <marta@dataflow.com>"
FIONA = "Fiona Finance <fiona@dataflow.com>"
DEV = "Dev Ops <dev@dataflow.com>"
CUSTOMERS = {  # Professional (an agent decides) in English; Enterprise in Spanish and French
    "en": "Laura Chen <laura@northwind-analytics.example>",
    "es": "María Fernanda López <maria@gruposierra.example>",
    "fr": "Antoine Moreau <antoine@banqueriviere.example>",
}
COMPANIES = {"en": "Northwind Analytics", "es": "Grupo Alimentario Sierra", "fr": "Banque Rivière"}
NO_SIGNUP = (
    "Customer_ID,Company,Contact_Name,Contact_Emails,Plan,Country,Preferred_Language,Time_Zone,"
    "Satisfaction_Score,Churn_Risk,Last_Support_Ticket,Signup_Date,Business_Hours\n"
    "2001,Nosign Studio,Nina Park,nina@nosign.example,Starter,US,en,America/New_York,4.0,Low,,,\n"
)


@pytest.fixture
def app(db_url: str, clock: FixedClock) -> Iterator[App]:
    agents = [
        *AGENTS,
        {"name": "Dev Ops", "roles": ["devops"], "addresses": ["dev@dataflow.com"]},
    ]
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "processing": {"parse_workers": 0},
            "identity": {"trusted_authserv_id": "mx.dataflow.com", "agents": agents},
        }
    )
    application = App(settings, clock)
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    application.import_customers(NO_SIGNUP)
    try:
        yield application
    finally:
        application.close()


def case(app: App) -> RefundCaseRecord:
    with transaction(app.sessions, commit=False) as session:
        row = session.scalars(select(RefundCaseRecord)).one()
        session.expunge(row)
        return row


def exported(app: App, customer: int) -> dict[str, str]:
    rows = csv.DictReader(io.StringIO(run_cli(app, "customers", "export", "-")))
    return next(row for row in rows if row["Customer_ID"] == str(customer))


def error_text(app: App, number: int = 10001) -> str:
    [error] = mails(app, "command_error", number)
    return text_of(error)


# -- cancellations -------------------------------------------------------------------------------

CANCEL = {
    "en": ("Cancel our subscription", "Please cancel my subscription at the end of the term."),
    "es": ("Cancelación", "Queremos cancelar nuestra suscripción, gracias."),
    "fr": ("Résiliation", "Nous souhaitons résilier notre abonnement, merci."),
}
CANCELLED = {  # subject; the plan's end 7 days after the request of 27 November; sorry to go
    "en": (
        "Cancellation Confirmed",
        "your Professional plan ends on December 4, 2026.",
        "We're sorry to see you go. If you have a moment, we'd welcome your feedback",
    ),
    "es": (
        "Cancelación confirmada",
        "su plan Enterprise finaliza el 4 de diciembre de 2026.",
        "Lamentamos que nos deje. Si tiene un momento, nos encantaría saber",
    ),
    "fr": (
        "Résiliation confirmée",
        "votre offre Enterprise prend fin le 4 décembre 2026.",
        "Nous sommes désolés de vous voir partir.",
    ),
}


@pytest.mark.parametrize("locale", ["en", "es", "fr"])
def test_a_cancellation_is_confirmed_by_the_right_level_with_template_4(
    app: App, locale: str
) -> None:
    subject, body = CANCEL[locale]
    send(app, CUSTOMERS[locale], subject, body, mid=f"cancel-{locale}@customer.example")
    row = case(app)
    assert (row.kind, row.cancellation, row.amount) == ("cancellation", True, 0)
    approver = ALEX
    if locale != "en":  # Enterprise: the Support Manager, asked by mail
        assert row.required_level == "support_manager"
        [request] = mails(app, "refund_approval_request", 10001)
        assert "marta@dataflow.com" in to(request)
        assert " ".join(composed(request)["Subject"].split()).endswith(
            f"Cancellation to confirm for {COMPANIES[locale]}"
        )
        text = text_of(request)
        assert "needs the confirmation of the Support Manager (level 2)" in text
        assert "Reason: Enterprise cancellation (custom pricing)" in text
        assert "#cancel confirm effective YYYY-MM-DD" in text and "#refund approve" not in text
        assert "#cancel deny REASON" in text
        agent_reply(app, ALEX, 10001, "#cancel confirm", mid=f"low-{locale}@dataflow.com")
        assert "is below the Support Manager (level 2)" in error_text(app)
        assert case(app).effective_on is None and mails(app, "refund_confirmation") == []
        approver = MARTA
    else:
        assert row.required_level == "agent" and mails(app, "refund_approval_request") == []
    agent_reply(app, approver, 10001, "#cancel confirm", mid=f"ok-{locale}@dataflow.com")
    [confirmation] = mails(app, "refund_confirmation", 10001)
    assert confirmation.locale == locale
    title, ends, sorry = CANCELLED[locale]
    assert composed(confirmation)["Subject"] == f"[Ticket #10001] {title}"
    text = text_of(confirmation)
    assert ends in text and sorry in text
    assert "refund" not in text.lower() and "reembolso" not in text and "rembours" not in text
    row = case(app)
    assert row.status == "confirmed" and str(row.effective_on) == "2026-12-04"
    assert row.cancelled_by == ("Alex Agent" if locale == "en" else "Marta Manager")


def test_a_cancellation_makes_the_churn_risk_high_in_customers_export(app: App) -> None:
    before = exported(app, 1001)
    assert (before["Satisfaction_Score"], before["Churn_Risk"]) == ("3.9", "Low")
    send(app, CUSTOMERS["en"], *CANCEL["en"], mid="cancel@northwind.example")
    agent_reply(app, ALEX, 10001, "#cancel confirm", mid="ok@dataflow.com")
    after = exported(app, 1001)
    # the cancellation counts as a 1/5 answer beside the imported 3.9: (3.9 + 1) / 2 = 2.45
    assert (after["Satisfaction_Score"], after["Churn_Risk"]) == ("2.5", "High")
    assert any(e["kind"] == "customer.metrics_updated" for e in detail(app, 10001)["events"])


def test_an_explicit_effective_date_and_a_short_notice(app: App) -> None:
    send(app, CUSTOMERS["en"], *CANCEL["en"], mid="cancel@northwind.example")
    agent_reply(  # two days' notice is under the 7 days an agent may give
        app, ALEX, 10001, "#cancel confirm effective 2026-11-29", mid="short@dataflow.com"
    )
    assert "2 days' notice, under the 7 days' notice" in error_text(app)
    assert case(app).effective_on is None
    agent_reply(app, ALEX, 10001, "#cancel confirm effective 2026-12-31", mid="later@dataflow.com")
    assert str(case(app).effective_on) == "2026-12-31"
    [confirmation] = mails(app, "refund_confirmation", 10001)
    assert "ends on December 31, 2026." in text_of(confirmation)


KEPT = {  # the agent's own reply, relayed as written
    "en": "Good news: your subscription stays active, nothing was cancelled.",
    "es": "Buenas noticias: su suscripción sigue activa, no se ha cancelado nada.",
    "fr": "Bonne nouvelle : votre abonnement reste actif, rien n'a été résilié.",
}


@pytest.mark.parametrize("locale", ["en", "es", "fr"])
def test_a_withdrawn_cancellation_is_denied_by_mail_without_template_4(
    app: App, locale: str
) -> None:
    subject, body = CANCEL[locale]
    send(app, CUSTOMERS[locale], subject, body, mid=f"cancel-{locale}@customer.example")
    customer = 1001 if locale == "en" else None
    before = exported(app, customer) if customer else None
    approver = ALEX
    if locale != "en":  # Enterprise: the same level as a confirmation
        agent_reply(app, ALEX, 10001, "#cancel deny", mid=f"low-{locale}@dataflow.com")
        assert "is below the Support Manager (level 2)" in error_text(app)
        assert case(app).cancellation_denied_at is None
        approver = MARTA
    agent_reply(
        app,
        approver,
        10001,
        f"#cancel deny the customer withdrew the request\n\n{KEPT[locale]}",
        mid=f"deny-{locale}@dataflow.com",
    )
    assert mails(app, "refund_confirmation") == []  # no Template 4
    [reply] = mails(app, "agent_reply", 10001)
    assert reply.locale == locale and "#cancel" not in text_of(reply)
    text = text_of(reply)
    assert KEPT[locale] in text
    for _, ends, sorry in CANCELLED.values():
        assert ends not in text and sorry not in text
    row = case(app)
    name = "Alex Agent" if locale == "en" else "Marta Manager"
    assert (row.status, row.decided_by, row.effective_on) == ("denied", name, None)
    assert (row.cancellation_denied_by, row.cancellation_denied_reason) == (
        name,
        "the customer withdrew the request",
    )
    assert row.cancellation_denied_at is not None and row.cancelled_by is None
    events = detail(app, 10001)["events"]
    assert any(e["kind"] == "refund.cancellation_denied" for e in events)
    assert not any(e["kind"] == "customer.metrics_updated" for e in events)
    if customer:
        assert exported(app, customer) == before
    errors = len(mails(app, "command_error"))
    agent_reply(app, approver, 10001, "#cancel confirm\n\nDone.", mid=f"late-{locale}@dataflow.com")
    [*_, error] = mails(app, "command_error", 10001)
    assert len(mails(app, "command_error")) == errors + 1
    assert "this ticket has no open cancellation request" in text_of(error)
    assert case(app).effective_on is None and mails(app, "refund_confirmation") == []
    assert len(mails(app, "agent_reply")) == 1  # nothing relayed either


def test_a_refund_and_cancel_request_keeps_its_refund_when_the_cancellation_is_denied(
    app: App,
) -> None:
    send(app, *REFUND_AND_CANCEL["en"][:1], "Refund", REFUND_AND_CANCEL["en"][1], mid="b@p.example")
    agent_reply(app, ALEX, 10001, "#cancel deny", mid="deny@dataflow.com")
    row = case(app)
    assert (row.status, row.cancellation_denied_by, row.cancellation_denied_reason) == (
        "requested",
        "Alex Agent",
        "",
    )
    assert mails(app, "refund_confirmation") == [] and mails(app, "agent_reply") == []
    agent_reply(app, ALEX, 10001, "#refund approve 49", mid="refund@dataflow.com")
    [confirmation] = mails(app, "refund_confirmation", 10001)
    assert "$49.00" in text_of(confirmation) and "sorry to see you go" not in text_of(confirmation)
    assert exported(app, 1002)["Churn_Risk"] != "High"


REFUND_AND_CANCEL = {
    "en": ("Tom Becker <tom@pixelpine.example>", "Please refund the $49 and cancel our plan."),
    "es": (CUSTOMERS["es"], "Queremos el reembolso de 500 USD y cancelar nuestro contrato."),
    "fr": (CUSTOMERS["fr"], "Merci de nous rembourser 500 USD et de résilier notre contrat."),
}
BOTH = {  # the refund and the cancellation, in the agent's reply
    "en": ("Your refund request (#10001) for $49.00 has been processed", "Starter plan ends on"),
    "es": ("solicitud de reembolso (#10001) por 500,00\u00a0US$", "plan Enterprise finaliza el"),
    "fr": ("demande de remboursement (#10001) de 500,00\u00a0$US", "offre Enterprise prend fin"),
}


@pytest.mark.parametrize("locale", ["en", "es", "fr"])
def test_refund_and_cancel_keeps_both_parts_and_one_reply_tells_both(app: App, locale: str) -> None:
    sender, body = REFUND_AND_CANCEL[locale]
    send(app, sender, "Refund", body, mid=f"both-{locale}@customer.example")
    row = case(app)
    assert (row.kind, row.cancellation) == ("refund", True)
    approver = ALEX if locale == "en" else MARTA
    agent_reply(
        app,
        approver,
        10001,
        f"#refund approve {row.amount}\n#cancel confirm\n\nAll done, as you asked.",
        mid=f"both-{locale}@dataflow.com",
    )
    assert mails(app, "refund_confirmation", 10001) == []  # one mail: the agent's reply
    [reply] = mails(app, "agent_reply", 10001)
    assert reply.locale == locale
    text = text_of(reply)
    refund, ends = BOTH[locale]
    assert "All done, as you asked." in text and refund in text and ends in text
    assert CANCELLED[locale][2] in text
    row = case(app)
    assert (row.status, row.approved_amount, str(row.effective_on)) == (
        "approved",
        row.amount,
        "2026-12-04",
    )


def test_refund_and_cancel_decided_in_two_mails_give_two_confirmations(app: App) -> None:
    send(app, *REFUND_AND_CANCEL["en"][:1], "Refund", REFUND_AND_CANCEL["en"][1], mid="b@p.example")
    agent_reply(app, ALEX, 10001, "#refund approve 49", mid="refund@dataflow.com")
    assert case(app).effective_on is None  # the cancellation still waits
    agent_reply(app, ALEX, 10001, "#cancel confirm", mid="cancel@dataflow.com")
    first, second = mails(app, "refund_confirmation", 10001)
    assert composed(first)["Subject"].endswith("Refund Processed")
    assert "$49.00" in text_of(first) and "sorry to see you go" not in text_of(first)
    assert composed(second)["Subject"].endswith("Cancellation Confirmed")
    assert "Starter plan ends on December 4, 2026." in text_of(second)
    assert exported(app, 1002)["Churn_Risk"] == "High"


def test_refund_on_a_cancellation_only_request_points_to_cancel(app: App) -> None:
    send(app, CUSTOMERS["en"], *CANCEL["en"], mid="cancel@northwind.example")
    agent_reply(app, ALEX, 10001, "#refund approve 149", mid="refund@dataflow.com")
    text = error_text(app)
    assert "no open refund or credit request; confirm its cancellation with #cancel" in text
    assert case(app).status == "requested"


# -- partial credits, disputes, price locks, unknown signup ---------------------------------------

PARTIAL = {
    "en": "After last week's outage we ask for a partial credit of $200.",
    "es": "Tras la caída de la semana pasada solicitamos un crédito parcial de 200 dólares.",
    "fr": "Suite à la panne de la semaine dernière, nous demandons un crédit partiel de 200 USD.",
}
CREDITED = {
    "en": ("Credit Applied", "a credit of $200.00 has been applied to your account"),
    "es": ("Crédito aplicado", "se ha aplicado un crédito de 200,00\u00a0US$ a su cuenta"),
    "fr": ("Avoir appliqué", "un avoir de 200,00\u00a0$US a été appliqué à votre compte"),
}


@pytest.mark.parametrize("locale", ["en", "es", "fr"])
def test_a_partial_credit_is_approved_by_the_support_manager_up_to_1000(
    app: App, locale: str
) -> None:
    send(app, CUSTOMERS[locale], "Outage", PARTIAL[locale], mid=f"credit-{locale}@c.example")
    row = case(app)
    assert (row.kind, row.amount, row.required_level) == (
        "partial_credit",
        Decimal("200.00"),
        "support_manager",
    )
    [request] = mails(app, "refund_approval_request", 10001)
    assert " ".join(composed(request)["Subject"].split()).endswith(
        f"Partial credit approval needed: $200.00 for {COMPANIES[locale]}"
    )
    agent_reply(app, ALEX, 10001, "#refund approve 200", mid=f"alex-{locale}@dataflow.com")
    assert "partial credit" in error_text(app)
    agent_reply(app, MARTA, 10001, "#refund approve 1200", mid=f"much-{locale}@dataflow.com")
    assert "1200 USD is over the 1000 USD manager limit" in text_of(
        mails(app, "command_error", 10001)[1]
    )
    agent_reply(app, MARTA, 10001, "#refund approve 200.00", mid=f"ok-{locale}@dataflow.com")
    [confirmation] = mails(app, "refund_confirmation", 10001)
    title, credited = CREDITED[locale]
    assert composed(confirmation)["Subject"] == f"[Ticket #10001] {title}"
    assert credited in text_of(confirmation)
    with transaction(app.sessions, commit=False) as session:
        [credit] = session.scalars(select(Credit))
        assert (credit.amount, credit.currency, credit.approved_by) == (
            Decimal("200.00"),
            "USD",
            "Marta Manager",
        )


def test_a_contract_dispute_needs_the_finance_director_at_any_amount(app: App) -> None:
    send(
        app,
        CUSTOMERS["en"],
        "Invoice",
        "We dispute the contract price: please refund $20 of the last invoice.",
        mid="dispute@northwind.example",
    )
    row = case(app)
    assert (row.required_level, row.contract_dispute) == ("finance_director", True)
    [request] = mails(app, "refund_approval_request", 10001)
    assert "fiona@dataflow.com" in to(request)
    assert "Reason: contract dispute" in text_of(request)
    agent_reply(app, MARTA, 10001, "#refund approve 20", mid="marta@dataflow.com")
    assert "is below the Finance Director (level 3) this needs: contract dispute" in error_text(app)
    agent_reply(app, FIONA, 10001, "#refund approve 20", mid="fiona@dataflow.com")
    assert case(app).status == "approved"


def test_a_price_locked_customer_needs_the_finance_director_and_is_told_in_spanish(
    app: App,
) -> None:
    send(  # 1045 has Price_Lock_Until 2027-03-01
        app,
        "Camila Torres <camila@solandinas.example>",
        "Reembolso y cancelación",
        "Solicitamos el reembolso de 50 dólares y cancelar nuestro contrato.",
        mid="lock@solandinas.example",
    )
    row = case(app)
    assert (row.required_level, row.price_lock) == ("finance_director", True)
    assert row.level_reason == "price-locked contract"
    agent_reply(app, MARTA, 10001, "#refund approve 50\n#cancel confirm", mid="m@dataflow.com")
    text = error_text(app)
    assert text.count("this needs: price-locked contract") == 2  # both parts refused
    agent_reply(app, FIONA, 10001, "#refund approve 50\n#cancel confirm", mid="f@dataflow.com")
    [confirmation] = mails(app, "refund_confirmation", 10001)
    assert confirmation.locale == "es"
    assert composed(confirmation)["Subject"] == "[Ticket #10001] Reembolso tramitado"
    text = text_of(confirmation)
    assert "por 50,00\u00a0US$" in text and "Lamentamos que nos deje." in text


def test_a_customer_without_signup_date_needs_the_support_manager_and_says_why(app: App) -> None:
    send(app, "Nina Park <nina@nosign.example>", "Refund", "Please refund the $49.", mid="n@n.ex")
    row = case(app)
    assert (row.required_level, row.days_since_purchase) == ("support_manager", None)
    why = "no Signup_Date on record: whether it is within the 30-day guarantee cannot be judged"
    assert row.level_reason == why
    [request] = mails(app, "refund_approval_request", 10001)
    text = text_of(request)
    assert f"Reason: {why}" in text and "Days since payment: unknown (no signup date)" in text
    agent_reply(app, ALEX, 10001, "#refund approve 49", mid="alex@dataflow.com")
    assert why in error_text(app)
    agent_reply(app, MARTA, 10001, "#refund approve 49", mid="marta@dataflow.com")
    assert len(mails(app, "refund_confirmation", 10001)) == 1
    assert exported(app, 2001)["Churn_Risk"] == "Medium"  # a refund: at least Medium


# -- bad input: one clear error mail, nothing changed -------------------------------------------


def test_bad_commands_get_one_error_mail_and_change_nothing(app: App) -> None:
    send(app, CUSTOMERS["en"], *CANCEL["en"], mid="cancel@northwind.example")
    agent_reply(
        app,
        ALEX,
        10001,
        "#escalate accounting\n#refund approve 12,34,56\n#cancel confirm effective 31/12/2026"
        "\n\nDone.",
        mid="bad@dataflow.com",
    )
    text = error_text(app)
    assert "Problem: unknown team 'accounting'" in text
    assert "Problem: 12,34,56 is not a positive amount" in text
    assert "Problem: '31/12/2026' is not a date (YYYY-MM-DD)" in text
    assert "#cancel confirm [effective YYYY-MM-DD]" in text  # the expected form
    agent_reply(app, DEV, 10001, "#cancel confirm", mid="dev@dataflow.com")
    assert "Dev Ops (devops) may not use #cancel" in text_of(mails(app, "command_error")[1])
    agent_reply(app, ALEX, 10001, "#cancel confirm effective 2026-11-01", mid="past@dataflow.com")
    assert "the effective date 2026-11-01 is before today (2026-11-27)" in text_of(
        mails(app, "command_error")[2]
    )
    row = case(app)
    assert (row.status, row.effective_on) == ("requested", None)
    assert mails(app, "refund_confirmation") == [] and mails(app, "agent_reply") == []
    assert exported(app, 1001)["Churn_Risk"] == "Low"


def test_a_cancel_for_a_closed_ticket_is_refused(app: App) -> None:
    send(app, CUSTOMERS["en"], *CANCEL["en"], mid="cancel@northwind.example")
    agent_reply(app, ALEX, 10001, "#status closed", mid="close@dataflow.com")
    agent_reply(app, ALEX, 10001, "#cancel confirm", mid="late@dataflow.com")
    assert "ticket #10001 is closed: nothing can be changed" in error_text(app)
    assert case(app).effective_on is None and mails(app, "refund_confirmation") == []


# -- Finance's ledger ----------------------------------------------------------------------------


def test_credits_list_shows_every_credit_and_approved_refund(app: App, clock: FixedClock) -> None:
    send(app, "Tom Becker <tom@pixelpine.example>", "Refund", "Refund the $49.", mid="t@p.ex")
    agent_reply(app, ALEX, 10001, "#refund approve 49.00", mid="refund@dataflow.com")
    send(app, CUSTOMERS["en"], "Outage", PARTIAL["en"], mid="credit@northwind.example")
    agent_reply(app, MARTA, 10002, "#refund approve 199.99", mid="credit@dataflow.com")
    send(app, CUSTOMERS["es"], "Denied", "Queremos un reembolso de 300 USD.", mid="d@g.example")
    agent_reply(app, MARTA, 10003, "#refund deny fuera de plazo", mid="deny@dataflow.com")
    lines = json.loads(run_cli(app, "credits", "list", "--json"))
    assert [(x["kind"], x["ticket"], x["amount"], x["approver"]) for x in lines] == [
        ("refund", 10001, "49.00", "Alex Agent"),
        ("credit", 10002, "199.99", "Marta Manager"),
    ]
    assert lines[0]["customer_id"] == 1002 and lines[0]["currency"] == "USD"
    assert lines[1]["reason"] == "partial credit on ticket #10002"
    assert lines[0]["time"] == "2026-11-27T10:00:00+00:00"
    rows = list(csv.DictReader(io.StringIO(run_cli(app, "credits", "list", "--csv"))))
    assert [r["amount"] for r in rows] == ["49.00", "199.99"]
    assert list(rows[0]) == [
        "time",
        "kind",
        "customer_id",
        "company",
        "ticket",
        "amount",
        "currency",
        "reason",
        "approver",
    ]
    text = run_cli(app, "credits", "list")
    assert "199.99 USD" in text and text.rstrip().endswith("2 credit(s) and refund(s)")
    assert json.loads(run_cli(app, "credits", "list", "--since", "2026-11-28", "--json")) == []
