"""Every dashboard page and the JSON endpoint over real HTTP, the escaping, and the login."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from dashboard.conftest import NOW, XSS_SUBJECT, serving
from mailproc.app import App
from mailproc.config_dashboard import DashboardSettings
from mailproc.errors import StartupError
from mailproc.passwords import hash_password, verify_password
from mailproc.store.db import transaction
from mailproc.store.models import Event, Inbound, Outbox, Ticket

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"


def get(url: str, *, auth: str | None = None, method: str = "GET") -> tuple[int, Message, str]:
    """Status, headers and body of one request (errors included)."""
    request = urllib.request.Request(url, method=method)
    if auth:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_board_page_orders_colours_escapes_and_draws_charts(dashboard_url: str) -> None:
    status, headers, body = get(dashboard_url + "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert body.index('data-number="10001"') < body.index('data-number="10002"')
    assert 'data-number="10001" data-colour="red"' in body
    assert 'data-number="10002" data-colour="amber"' in body
    assert ESCAPED in body and XSS_SUBJECT not in body and "<b>bold" not in body
    assert body.count("<svg") == 4 and body.count("<script") == 1  # only /static/board.js
    assert "as of 2026-11-27 10:50 UTC" in body
    assert "First response in SLA" in body and "Escalation rate" in body
    assert 'class="bar p0"' in body  # today's P0 tickets in the per-day chart
    assert "DB-2002" in body or "API-4004" in body  # the top error codes chart


def test_board_json_endpoint(dashboard_url: str) -> None:
    status, headers, body = get(dashboard_url + "/api/board")
    assert status == 200 and headers["content-type"] == "application/json"
    data = json.loads(body)
    assert data["now"] == NOW.isoformat() and data["open"] == 10 and data["overdue"] == 1
    assert [t["colour"] for t in data["tickets"][:3]] == ["red", "amber", "green"]
    assert any(t["subject"] == XSS_SUBJECT for t in data["tickets"])
    assert set(data["tiles"]) == {"today", "this week"}
    today = {tile["name"]: tile for tile in data["tiles"]["today"]}
    # the report's KPIs (mailproc.reports.metrics): 10 new tickets, 2 P0 escalated to DevOps,
    # one first-response deadline passed (10001's), unanswered
    assert today["New tickets"]["value"] == "10"
    assert (today["Escalation rate"]["value"], today["Escalation rate"]["ok"]) == ("20%", False)
    assert today["Escalation rate"]["target"] == "≤ 10%"
    assert (today["First response in SLA"]["value"], today["First response in SLA"]["ok"]) == (
        "0%",
        False,
    )
    assert today["Satisfaction"]["value"] == "n/a" and today["Satisfaction"]["ok"] is None


def test_ticket_page_shows_messages_decisions_and_events(seeded: App, dashboard_url: str) -> None:
    status, _, body = get(dashboard_url + "/tickets/10002")
    with transaction(seeded.sessions, commit=False) as session:
        ticket_id = session.scalar(select(Ticket.id).where(Ticket.number == 10002))
        logged = session.scalar(
            select(func.count()).select_from(Event).where(Event.ticket_id == ticket_id)
        )
    assert status == 200
    assert "Ticket #10002" in body and "Harborline Logistics" in body
    assert "Why: the decisions" in body and "SLA row Professional × P0" in body
    assert "URGENT: Error 503 Service Unavailable - all dashboards down" in body
    assert (
        f"Event log ({logged})" in body and "ticket.created" in body and "ticket.escalated" in body
    )
    status, _, body = get(dashboard_url + "/tickets/10010")
    assert status == 200 and ESCAPED in body and "<script>alert" not in body
    assert get(dashboard_url + "/tickets/99999")[0] == 404


def test_customer_page(dashboard_url: str) -> None:
    status, _, body = get(dashboard_url + "/customers/1003")
    assert status == 200
    assert "Harborline Logistics" in body and "#10002" in body
    assert "Satisfaction trend" in body and "<svg" in body
    assert "Credits (0)" in body and "Refunds and cancellations (0)" in body
    assert get(dashboard_url + "/customers/1")[0] == 404


def test_outbox_page_lists_what_went_out_to_whom_and_what_is_stuck(
    seeded: App, dashboard_url: str
) -> None:
    status, _, body = get(dashboard_url + "/outbox")
    assert status == 200
    assert "acknowledgment" in body and "priya@harborline.example" in body
    assert "devops@dataflow.com" in body
    # nothing delivered them: queued 50 minutes ago and still pending, so all are stuck
    assert "Stuck (26)" in body and "Latest (26)" in body
    with transaction(seeded.sessions) as session:
        notices = select(Outbox).where(Outbox.template == "escalation_notice")
        row = next(
            r for r in session.scalars(notices) if r.recipients[0].address.startswith("priya")
        )
        row.status, row.attempts, row.last_error = "failed", 1, "550 5.1.1 <x>: no such user"
        row.recipients[0].status, row.recipients[0].reason = "failed", "550 5.1.1 no such user"
    body = get(dashboard_url + "/outbox")[2]
    assert "550 5.1.1 &lt;x&gt;: no such user" in body
    assert '<li class="failed">priya@harborline.example <small>failed: 550 5.1.1' in body


def test_quarantine_page_says_why(seeded: App, dashboard_url: str) -> None:
    with transaction(seeded.sessions) as session:
        inbound = session.scalars(select(Inbound).where(Inbound.id == 1)).one()
        inbound.status, inbound.attempts = "quarantined", 3
        inbound.last_error = "ValueError: <broken> header"
    status, _, body = get(dashboard_url + "/quarantine")
    assert status == 200 and "Quarantine (1)" in body
    assert "ValueError: &lt;broken&gt; header" in body
    assert "Error 503: Service Unavailable" in body and "samuel@pinnaclefin.example" in body


def test_read_only(dashboard_url: str) -> None:
    assert get(dashboard_url + "/", method="POST")[0] == 405
    assert get(dashboard_url + "/api/board", method="DELETE")[0] == 405


@pytest.fixture
def login_url(seeded: App) -> Iterator[str]:
    settings = DashboardSettings(
        listen="127.0.0.1:0", users={"marta": hash_password("s3cret pass")}, token="t" * 40
    )
    with serving(seeded, settings) as url:
        yield url


def test_login_with_a_hashed_password_or_the_token(login_url: str) -> None:
    status, headers, _ = get(login_url + "/")
    assert status == 401 and headers["www-authenticate"].startswith("Basic realm=")
    assert get(login_url + "/api/board", auth=basic("marta", "wrong"))[0] == 401
    assert get(login_url + "/api/board", auth=basic("nobody", "s3cret pass"))[0] == 401
    assert get(login_url + "/static/board.js")[0] == 401
    assert get(login_url + "/", auth=basic("marta", "s3cret pass"))[0] == 200
    assert get(login_url + "/api/board", auth=basic("marta", "s3cret pass"))[0] == 200
    assert get(login_url + "/api/board", auth="Bearer " + "t" * 40)[0] == 200
    assert get(login_url + "/api/board", auth="Bearer " + "t" * 39)[0] == 401


def test_off_loopback_a_login_is_required_and_start_is_refused_without_one(seeded: App) -> None:
    assert not DashboardSettings(listen="127.0.0.1:8080").login_required
    assert not DashboardSettings(listen="[::1]:8080").login_required
    assert DashboardSettings(listen="0.0.0.0:8080").login_required
    assert DashboardSettings(listen="192.0.2.7:8080").login_required
    refused_settings = DashboardSettings(listen="0.0.0.0:0")
    with (
        pytest.raises(StartupError, match="not a loopback address") as refused,
        serving(seeded, refused_settings),
    ):
        pass
    assert refused.value.exit_code == os.EX_CONFIG


def test_settings_accept_only_password_hashes() -> None:
    hashed = hash_password("correct horse")
    assert verify_password("correct horse", hashed) and not verify_password("wrong", hashed)
    assert hashed.startswith("scrypt$15$8$1$") and hash_password("correct horse") != hashed
    with pytest.raises(ValidationError, match="not a password hash"):
        DashboardSettings(users={"marta": "plain text"})
    with pytest.raises(ValidationError, match="at least 32"):
        DashboardSettings(token="short")
    with pytest.raises(ValidationError, match="HOST:PORT"):
        DashboardSettings(listen="8080")


def test_a_busy_port_is_a_startup_error(seeded: App, dashboard_url: str) -> None:
    port = dashboard_url.rsplit(":", 1)[1]
    with (
        pytest.raises(StartupError, match="cannot listen") as busy,
        serving(seeded, DashboardSettings(listen=f"127.0.0.1:{port}")),
    ):
        pass
    assert busy.value.exit_code == os.EX_UNAVAILABLE
    assert get(dashboard_url + "/api/board")[0] == 200


def test_the_page_shows_the_most_urgent_rows_and_refreshes_as_many(seeded: App) -> None:
    with serving(seeded, DashboardSettings(listen="127.0.0.1:0", board_rows=3)) as url:
        body = get(url + "/")[2]
        limited = json.loads(get(url + "/api/board?limit=2")[2])
        everything = json.loads(get(url + "/api/board?limit=0")[2])
        assert get(url + "/api/board?limit=x")[0] == 400
    assert body.count("<tr data-number") == 3 and 'data-src="/api/board?limit=3"' in body
    assert "The 3 most urgent of 10 open tickets" in body
    assert [t["number"] for t in limited["tickets"]] == [10001, 10002]
    assert limited["open"] == 10 and len(everything["tickets"]) == 10
