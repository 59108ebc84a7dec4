"""Issue 16: the scheduled report mails (weekly, monthly, quarterly), read as they go out."""

from __future__ import annotations

import email
import re
import threading
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from test_reports import IDENTITY, agent, at, move, send

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.outbound.deliver import deliver_all_due
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Outbox

ZONE_SETTINGS = {
    "company": {"timezone": "America/New_York"},
    "notify": {"leadership_address": "board@dataflow.com"},
}


@pytest.fixture
def settings(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)  # the Maildir relay writes into ./outbox
    return Settings.model_validate(
        {
            "database": {"url": db_url},
            "processing": {"parse_workers": 0},
            "identity": IDENTITY,
            **ZONE_SETTINGS,
        }
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    application = App(settings, FixedClock(at("2026-11-30 14:00")))
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    try:
        yield application
    finally:
        application.close()


def reports(app: App) -> dict[str, EmailMessage]:
    with transaction(app.sessions, commit=False) as session:
        rows = session.execute(
            select(Outbox.key, Outbox.raw).where(Outbox.key.like("report:%"))
        ).all()
    return {
        key: email.message_from_bytes(raw, policy=policy.default)  # type: ignore[misc]
        for key, raw in rows
    }


def check(app: App, when: str) -> list[str]:
    move(app, when)
    return app.check(app.clock.now(), dry_run=False).reports


def a_week_with_a_breach_and_an_escalation(app: App) -> None:
    """Monday 2026-11-30 in New York: a P1 never answered (breach, Engineering) and a P2."""
    send(
        app,
        "2026-11-30 14:00",
        "Oliver <oliver@thamesvalleyenergy.example>",
        "DS-1001: Invalid Credentials",
        "Our Azure SQL source fails.",
    )  # 10001
    send(
        app,
        "2026-11-30 14:10",
        "Laura <laura@northwind-analytics.example>",
        "MOB-6006: App Not Loading",
        "The mobile app shows a blank screen.",
    )  # 10002
    agent(app, "2026-11-30 15:00", 10002, "#status resolved\n\nPlease update the app.")


def test_weekly_report_goes_out_once_even_after_a_missed_day(app: App) -> None:
    a_week_with_a_breach_and_an_escalation(app)
    assert check(app, "2026-11-30 18:00") == []  # no report of periods before the first ticket
    # Sunday: the week is not over; November's report was due on the 1st, 08:00 local
    assert check(app, "2026-12-06 23:00") == ["monthly report 2026-11 to board@dataflow.com"]
    # Monday 2026-12-07 08:00 in New York is 13:00 UTC: no run on Monday, one on Tuesday
    lines = check(app, "2026-12-08 10:00")
    assert lines == ["weekly report 2026-W49 to marta@dataflow.com, support-manager@dataflow.com"]
    assert check(app, "2026-12-08 10:05") == []  # once per period
    # overlapping runs from two more processes send nothing more
    others = [App(app.settings, FixedClock(at("2026-12-08 10:10"))) for _ in range(2)]
    threads = [
        threading.Thread(target=o.check, args=(at("2026-12-08 10:10"),), kwargs={"dry_run": False})
        for o in others
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in others:
        other.close()
    sent = reports(app)
    assert sorted(sent) == ["report:monthly:2026-11", "report:weekly:2026-W49"]

    weekly = sent["report:weekly:2026-W49"]
    assert weekly["Subject"] == "Weekly support report 2026-W49 (2026-11-30 - 2026-12-06)"
    assert {a.addr_spec for a in weekly["To"].addresses} == {
        "support-manager@dataflow.com",
        "marta@dataflow.com",
    }
    assert weekly["Auto-Submitted"] == "auto-generated"
    assert weekly.get_content_type() == "multipart/alternative"
    plain, related = weekly.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.iter_parts()
    assert html_part.get_content_type() == "text/html"
    assert [i.get_content_type() for i in images] == ["image/png", "image/png"]
    html = html_part.get_content()
    referenced = set(re.findall(r'src="cid:([^"]+)"', html))
    attached = {str(i["Content-ID"]).strip("<>") for i in images}
    assert referenced == attached and len(attached) == 2
    assert all(i.get_content_disposition() == "inline" for i in images)
    assert all(i.get_content().startswith(b"\x89PNG\r\n\x1a\n") for i in images)

    text = plain.get_content()
    assert "Tickets opened: 2" in text
    assert "First response within SLA: 50.0 %" in text and "[MISSED]" in text
    assert "- #10001 P1 Thames Valley Energy: due" in text  # the breach
    assert "#10001 P1 Thames Valley Energy: opened 2026-11-30 14:00 UTC, to engineering" in text
    assert "#10001" in html and "&#10008; missed" in html and "&#10004; met" in html

    monthly = sent["report:monthly:2026-11"]
    assert [a.addr_spec for a in monthly["To"].addresses] == ["board@dataflow.com"]
    assert monthly["Subject"] == "Monthly satisfaction and churn report 2026-11"

    delivered = deliver_all_due(app.sessions, app.settings, app.clock)
    assert delivered.sent >= 2
    files = list(Path("outbox/new").iterdir())
    subjects = {
        email.message_from_bytes(f.read_bytes(), policy=policy.default)["Subject"] for f in files
    }
    assert weekly["Subject"] in subjects


def test_quarterly_knowledge_base_report_flags_codes_over_ten_a_month(app: App) -> None:
    send(
        app,
        "2026-11-02 15:00",
        "Tom <tom@pixelpine.example>",
        "COL-11001: Comments not loading",
        "Comments do not load.",
    )
    for n in range(11):
        send(
            app,
            f"2026-12-01 15:{n:02d}",
            "Laura <laura@northwind-analytics.example>",
            f"DS-1001: Invalid Credentials on source {n}",
            "The connection test fails.",
        )
    assert check(app, "2027-01-04 14:00") == [
        "weekly report 2026-W53 to marta@dataflow.com, support-manager@dataflow.com",
        "monthly report 2026-12 to board@dataflow.com",
        "quarterly report 2026-Q4 to marta@dataflow.com, support-manager@dataflow.com, "
        "board@dataflow.com",
    ]
    quarterly = reports(app)["report:quarterly:2026-Q4"]
    text = quarterly.get_body(("plain",)).get_content()
    assert "- DS-1001: 2026-10 0, 2026-11 0, 2026-12 11; total 11 [needs an article]" in text
    assert "- COL-11001: 2026-10 0, 2026-11 1, 2026-12 0; total 1\r\n" in text
    related = quarterly.get_body(("related",))
    assert len([p for p in related.iter_parts() if p.get_content_type() == "image/png"]) == 3


def test_report_html_file_embeds_its_charts(app: App, tmp_path: Path) -> None:
    from test_reports import mailproc

    a_week_with_a_breach_and_an_escalation(app)
    page = tmp_path / "week.html"
    output = mailproc(
        app,
        "report",
        "--from",
        "2026-11-30",
        "--period",
        "week",
        "--html",
        str(page),
        "--now",
        "2026-12-08T10:00:00+00:00",
    )
    assert "Weekly support report 2026-W49" in output
    html = page.read_text()
    assert "cid:" not in html and html.count('src="data:image/png;base64,') == 2
    assert "#10001" in html
