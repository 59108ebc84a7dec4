"""The customer_analytics CSV: validation with line numbers, upsert, export round trip."""

from __future__ import annotations

from mailproc.app import App
from mailproc.core.customers_csv import COLUMNS, parse_customers_csv
from mailproc.core.model import Plan
from mailproc.resources import resource_path
from mailproc.store import repo
from mailproc.store.db import transaction

HEADER = ",".join(COLUMNS)


def sample_text() -> str:
    return (resource_path("data") / "customers_sample.csv").read_text("utf-8")


def test_sample_data_fits_the_procedures() -> None:
    parsed = parse_customers_csv(sample_text())
    assert not parsed.errors
    by_id = {c.id: c for c in parsed.customers}
    assert sorted(by_id) == list(range(1001, 1051))
    assert by_id[1009].country == "GB" and by_id[1009].timezone == "Europe/London"
    assert by_id[1011].language == "es" and by_id[1011].plan is Plan.ENTERPRISE
    assert by_id[1018].plan is Plan.ENTERPRISE and by_id[1033].plan is Plan.ENTERPRISE
    assert by_id[1002].plan is Plan.STARTER
    assert by_id[1008].satisfaction_score is not None and by_id[1008].satisfaction_score < 3
    assert {c.language for c in parsed.customers} >= {"en", "es", "fr"}


def test_bad_rows_are_reported_with_line_numbers_and_good_rows_load() -> None:
    text = "\n".join(
        [
            HEADER,
            "2001,Good Co,Ann,ann@good.example,Starter,US,en,America/New_York,4.5,Low,2026-01-02,,",
            "2002,Bad Plan,Bo,bo@x.example,Platinum,US,en,America/New_York,,,,,",
            "abc,Bad Id,Cy,cy@x.example,Starter,US,en,UTC,,,,,",
            "2004,Bad Mail,Di,not-an-address,Starter,US,en,UTC,,,,,",
            "2005,Bad Zone,Ed,ed@x.example,Starter,US,en,Mars/Olympus,,,,,",
            "2006,Bad Score,Fe,fe@x.example,Starter,US,en,UTC,7,,,,",
            "2007,Thief,Gu,ann@good.example,Starter,US,en,UTC,,,,,",
            "2008,Bad Date,Ha,ha@x.example,Starter,US,en,UTC,,,26/11/2026,,",
            "2009,,Io,io@x.example,Starter,US,en,UTC,,,,,",
            '2010,"Quoted, Inc.",Jo,JO@Quoted.Example;jo2@quoted.example,enterprise,fr,fr,'
            "Europe/Paris,,,,,",
        ]
    )
    parsed = parse_customers_csv(text)
    assert [c.id for c in parsed.customers] == [2001, 2010]
    reasons = {e.line: e.reason for e in parsed.errors}
    assert reasons[3].startswith("Plan 'Platinum' is not one of")
    assert "not a whole number" in reasons[4]
    assert "not a valid address" in reasons[5]
    assert "not an IANA time zone" in reasons[6]
    assert "outside 1-5" in reasons[7]
    assert "already belongs to customer 2001" in reasons[8]
    assert "not a date" in reasons[9]
    assert reasons[10] == "Company is empty"
    quoted = parsed.customers[1]
    assert quoted.emails == ("jo@quoted.example", "jo2@quoted.example")
    assert quoted.plan is Plan.ENTERPRISE and quoted.country == "FR"


def test_missing_columns_reject_the_file() -> None:
    parsed = parse_customers_csv("Customer_ID,Company\n1,X\n")
    assert not parsed.customers
    assert parsed.errors[0].line == 1 and "missing column(s)" in parsed.errors[0].reason


def test_import_upserts_and_matches_senders(app: App) -> None:
    report = app.import_customers(sample_text())
    assert (report.created, report.updated, report.errors) == (50, 0, ())
    changed = sample_text().replace("Northwind Analytics,", "Northwind Analytics Ltd,")
    report = app.import_customers(changed)
    assert (report.created, report.updated) == (0, 50)
    with transaction(app.sessions, commit=False) as session:
        row = repo.customer_by_address(session, "laura@northwind-analytics.example")
        assert row is not None and row.id == 1001 and row.company == "Northwind Analytics Ltd"
        assert repo.customer_by_address(session, "nobody@nowhere.example") is None


def test_import_rejects_an_address_owned_in_the_database(app: App) -> None:
    app.import_customers(sample_text())
    text = HEADER + "\n3001,Copycat,Zed,laura@northwind-analytics.example,Starter,US,en,UTC,,,,,\n"
    report = app.import_customers(text)
    assert report.created == 0
    assert report.errors[0].line == 2 and "belongs to customer 1001" in report.errors[0].reason


def test_export_round_trips_through_import(app: App) -> None:
    app.import_customers(sample_text())
    exported = app.export_customers()
    assert parse_customers_csv(exported).customers == parse_customers_csv(sample_text()).customers


def test_export_neutralizes_formula_cells_and_round_trips(app: App) -> None:
    text = (
        HEADER + "\n3001,=HYPERLINK(\"http://evil.example\"),+cmd|' /C calc'!A0,"
        "x@formula.example,Starter,US,en,UTC,,,,,\n"
        '3002,-2+3,"\tTabbed",y@formula.example,Starter,US,en,UTC,,,,,\n'
        "3003,Sums Inc,@SUM(A1),z@formula.example,Starter,US,en,UTC,,,,,\n"
    )
    report = app.import_customers(text)
    assert report.created == 3 and not report.errors
    exported = app.export_customers()
    cells = [cell for line in exported.splitlines()[1:] for cell in line.split(",")]
    assert not [c for c in cells if c.lstrip('"').startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert "'=HYPERLINK" in exported and "'-2+3" in exported and "'@SUM(A1)" in exported
    again = {c.id: c for c in parse_customers_csv(exported).customers}
    assert again[3001].company == '=HYPERLINK("http://evil.example")'
    assert again[3003].contact_name == "@SUM(A1)"
    assert again[3002].company == "-2+3"


def test_import_rejects_line_breaks_inside_fields() -> None:
    text = (
        HEADER + '\n3001,"Acme\nInjected",Zed,a@ok.example,Starter,US,en,UTC,,,,,\n'
        '3002,"Acme\rCorp",Zed,b@ok.example,Starter,US,en,UTC,,,,,\n'
        "3003,Fine,Zed,c@ok.example,Starter,US,en,UTC,,,,,\n"
    )
    parsed = parse_customers_csv(text)
    assert [c.id for c in parsed.customers] == [3003]
    assert len(parsed.errors) == 2
    assert all("line break" in e.reason for e in parsed.errors)


def test_price_lock_until_is_an_optional_date_column() -> None:
    by_id = {c.id: c for c in parse_customers_csv(sample_text()).customers}
    locked = {i: str(c.price_lock_until) for i, c in by_id.items() if c.price_lock_until}
    assert locked == {
        1020: "2027-03-04",
        1036: "2027-07-07",
        1042: "2024-03-27",  # expired: no longer sends a case to the Finance Director
        1045: "2027-03-01",
    }
    text = "\n".join(
        [
            HEADER,
            "2001,Locked,An,an@x.example,Enterprise,US,en,UTC,,,,,,2027-06-30",
            "2002,Bad Lock,Bo,bo@x.example,Enterprise,US,en,UTC,,,,,,next year",
        ]
    )
    parsed = parse_customers_csv(text)
    assert [str(c.price_lock_until) for c in parsed.customers] == ["2027-06-30"]
    [error] = parsed.errors
    assert (error.line, error.reason) == (
        3,
        "Price_Lock_Until 'next year' is not a date (YYYY-MM-DD)",
    )


def test_price_lock_until_is_exported(app: App) -> None:
    app.import_customers(sample_text())
    [header, *rows] = app.export_customers().splitlines()
    assert header.endswith(",Business_Hours,Price_Lock_Until")
    assert next(r for r in rows if r.startswith("1020,")).endswith(",2027-03-04")
