"""Issue 14 part 3: incidents (§4.3, §7.3). Each customer of an incident is told once that we
know of the outage and where updates are posted (also those who join later), and once that it
is resolved; `mailproc incidents resolve` works on the default SQLite set-up."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from mailproc.app import App
from mailproc.cli.root import cli
from mailproc.clock import FixedClock
from mailproc.config import Settings, load_settings
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.outbound.deliver import renderer_for
from mailproc.outbound.outbox import materialize
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Incident, Outbox, Ticket

PLATFORM = "DB-2002: platform outage, all dashboards down"
T0 = dt.datetime(2026, 12, 7, 14, 0, tzinfo=dt.UTC)
SAMUEL = "Samuel <samuel@pinnaclefin.example>"  # 1036, en
MARIA = "María <maria@gruposierra.example>"  # 1011, es
ANTOINE = "Antoine <antoine@banqueriviere.example>"  # 1014, fr
ROBERT = "Robert <robert@atlasinsurance.example>"  # 1018, en
AWARE = {
    "en": "We are aware of an outage affecting our service (DB-2002)",
    "es": "Tenemos constancia de una interrupción que afecta a nuestro servicio (DB-2002)",
    "fr": "Nous avons connaissance d'une panne qui touche notre service (DB-2002)",
}


def raw(sender: str, mid: str) -> bytes:
    head = f"From: {sender}\r\nTo: support@dataflow.com\r\nSubject: {PLATFORM}\r\n"
    return (head + f"Message-ID: <{mid}>\r\n\r\nNothing loads.\r\n").encode()


def outbox(app: App, template: str) -> list[Outbox]:
    renderer = renderer_for(app.settings)
    with transaction(app.sessions) as session:
        for row in session.scalars(select(Outbox).where(Outbox.raw.is_(None))):
            materialize(session, row, renderer)
    with transaction(app.sessions, commit=False) as session:
        query = select(Outbox).options(selectinload(Outbox.recipients))
        rows = list(session.scalars(query.where(Outbox.template == template).order_by(Outbox.id)))
        session.expunge_all()
        return rows


def by_address(rows: list[Outbox]) -> dict[str, Outbox]:
    found: dict[str, Outbox] = {}
    for row in rows:
        for recipient in row.recipients:
            assert recipient.address not in found, f"{recipient.address} told twice"
            found[recipient.address] = row
    return found


def text(row: Outbox) -> str:
    assert row.raw is not None
    body = message_from_bytes(row.raw, policy=policy.default).get_body(("plain",))
    assert body is not None
    return re.sub(r"[ \n]+", " ", body.get_content())


@pytest.fixture
def app(db_url: str) -> Iterator[App]:
    settings = Settings.model_validate(
        {"database": {"url": db_url}, "processing": {"parse_workers": 0}}
    )
    application = App(settings, FixedClock(T0))
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    try:
        yield application
    finally:
        application.close()


def report(app: App, sender: str, mid: str, after: dt.timedelta = dt.timedelta(0)) -> None:
    assert isinstance(app.clock, FixedClock)
    app.clock.advance(after)
    app.ingest([RawInput(raw(sender, mid), Envelope("smtp"))])
    app.process()


def test_each_customer_is_told_once_in_their_language_also_when_joining_later(
    app: App,
) -> None:
    report(app, SAMUEL, "s1@pinnaclefin.example")
    report(app, MARIA, "m1@gruposierra.example", dt.timedelta(minutes=5))
    assert outbox(app, "incident_notice") == []  # two customers: no incident yet
    report(app, ANTOINE, "a1@banqueriviere.example", dt.timedelta(minutes=5))
    told = by_address(outbox(app, "incident_notice"))
    assert set(told) == {
        "samuel@pinnaclefin.example",
        "maria@gruposierra.example",
        "antoine@banqueriviere.example",
    }
    for address, locale in [
        ("samuel@pinnaclefin.example", "en"),
        ("maria@gruposierra.example", "es"),
        ("antoine@banqueriviere.example", "fr"),
    ]:
        assert told[address].locale == locale
        assert AWARE[locale] in text(told[address])
        assert "status.dataflow.com" in text(told[address])
    # Samuel writes again, Robert joins: Robert is told, Samuel is not told twice.
    report(app, SAMUEL, "s2@pinnaclefin.example", dt.timedelta(minutes=10))
    report(app, ROBERT, "r1@atlasinsurance.example", dt.timedelta(minutes=10))
    app.check(app.clock.now(), dry_run=False)
    told = by_address(outbox(app, "incident_notice"))
    assert len(told) == 4 and "robert@atlasinsurance.example" in told
    with transaction(app.sessions) as session:
        incident = session.scalars(select(Incident)).one()
        numbers = app.workflows().resolve_incident(session, incident, "Failover.", app.clock.now())
    assert numbers == [10001, 10002, 10003, 10004, 10005]
    resolved = by_address(outbox(app, "incident_resolved"))  # once per customer
    assert set(resolved) == set(told)
    assert resolved["maria@gruposierra.example"].locale == "es"


def test_the_incident_threshold_and_window_are_settings(db_url: str) -> None:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "processing": {"parse_workers": 0},
            "incidents": {"min_customers": 2, "window_minutes": 10},
        }
    )
    app = App(settings, FixedClock(T0))
    app.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    try:
        report(app, SAMUEL, "w1@pinnaclefin.example")
        report(app, MARIA, "w2@gruposierra.example", dt.timedelta(minutes=11))
        assert outbox(app, "incident_notice") == []  # outside the 10-minute window
        report(app, ANTOINE, "w3@banqueriviere.example", dt.timedelta(minutes=9))
        told = by_address(outbox(app, "incident_notice"))
        assert set(told) == {"maria@gruposierra.example", "antoine@banqueriviere.example"}
    finally:
        app.close()


# --- the command line on the default SQLite set-up ------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("MAILPROC_") and name != "MAILPROC_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_incidents_resolve_works_on_the_default_sqlite_set_up(workdir: Path) -> None:
    assert run("init", "--sample-data").exit_code == 0
    for index, sender in enumerate([SAMUEL, MARIA, ANTOINE, SAMUEL]):
        path = workdir / f"{index}.eml"
        path.write_bytes(raw(sender, f"cli-{index}@example.org"))
        ingested = run("ingest", str(path))
        assert ingested.exit_code == 0, ingested.output
    listed = run("incidents", "list", "--json")
    [incident] = json.loads(listed.output)
    assert incident["status"] == "open" and len(incident["tickets"]) == 4
    missing = run("incidents", "resolve", str(incident["id"]))
    assert missing.exit_code == 64 and "--summary" in missing.output
    done = run("incidents", "resolve", str(incident["id"]), "--summary", "Database failover.")
    assert done.exit_code == 0, done.output
    app = App(load_settings(str(workdir / "mailproc.toml")))
    try:
        with transaction(app.sessions, commit=False) as session:
            assert session.scalars(select(Incident.status)).one() == "resolved"
            assert set(session.scalars(select(Ticket.status))) == {"resolved"}
        resolved = by_address(outbox(app, "incident_resolved"))
        assert set(resolved) == {
            "samuel@pinnaclefin.example",
            "maria@gruposierra.example",
            "antoine@banqueriviere.example",
        }
        assert "Database failover." in text(resolved["antoine@banqueriviere.example"])
        assert resolved["antoine@banqueriviere.example"].locale == "fr"
    finally:
        app.close()
