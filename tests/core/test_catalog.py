"""Error-code catalog: packaged data, code detection in text, config overrides."""

from __future__ import annotations

import pickle

import pytest

from mailproc.core.catalog import (
    Catalog,
    CatalogError,
    catalog_from_data,
    load_default_catalog,
    parse_catalog,
)
from mailproc.core.model import Priority

PROCEDURE_CODES = {
    "DS-1001",
    "DS-1002",
    "DB-2002",
    "DB-2003",
    "DR-3003",
    "API-4001",
    "API-4004",
    "PERM-5005",
    "MOB-6006",
    "MOB-6007",
    "CALC-7007",
    "SSO-9001",
    "COL-11001",
    "MAP-12001",
    "WH-13001",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_default_catalog()


def test_packaged_catalog_has_every_code_the_procedures_name(catalog: Catalog) -> None:
    assert set(catalog.codes) == PROCEDURE_CODES


@pytest.mark.parametrize("code", sorted(PROCEDURE_CODES))
def test_every_code_is_translated_into_english_spanish_and_french(
    catalog: Catalog, code: str
) -> None:
    entry = catalog.codes[code]
    titles = {lang: entry.title(lang) for lang in ("en", "es", "fr")}
    steps = {lang: entry.troubleshooting(lang) for lang in ("en", "es", "fr")}
    assert set(entry.titles) == set(entry.steps) == {"en", "es", "fr"}
    assert len(set(titles.values())) == 3  # really translated, not copied
    assert len({len(s) for s in steps.values()}) == 1  # same steps in every language
    assert all(2 <= len(s) <= 5 and all(line.strip() for line in s) for s in steps.values())
    assert steps["es"] != steps["en"] != steps["fr"]
    assert entry.area and entry.team in {"DevOps", "Engineering", "Product"}


@pytest.mark.parametrize(
    ("code", "priority", "team"),
    [
        ("DB-2002", Priority.P0, "DevOps"),  # §2.1 P0 example, §4.1 P0 → DevOps
        ("DS-1001", Priority.P1, "Engineering"),  # §2.1 P1 example, §4.1 P1 → Engineering
        ("SSO-9001", Priority.P1, "Engineering"),  # §2.1 SSO login issue, §3.2 use case
        ("API-4004", Priority.P1, "Engineering"),  # §2.2 use case
        ("MOB-6006", Priority.P2, "Product"),  # §2.1 P2 example
        ("DB-2003", Priority.P2, "Engineering"),  # §4.3 use case: escalated to Engineering
        ("MOB-6007", Priority.P2, "Product"),  # §4.1 P2-P3 example → Product
        ("COL-11001", Priority.P3, "Product"),  # §2.1 P3 example
        ("CALC-7007", Priority.P3, "Product"),  # §7.3 use case: resolved by the agent
        ("DR-3003", Priority.P3, "Engineering"),  # §8 use case: a P3 ticket
    ],
)
def test_default_priorities_and_teams_follow_the_procedures(
    catalog: Catalog, code: str, priority: Priority, team: str
) -> None:
    entry = catalog.codes[code]
    assert (entry.priority, entry.team) == (priority, team)


def test_missing_translation_falls_back_to_english(catalog: Catalog) -> None:
    entry = catalog.codes["DS-1001"]
    assert entry.title("de") == entry.title("en") == "Invalid credentials"
    assert entry.troubleshooting("de") == entry.troubleshooting("en")


@pytest.mark.parametrize(
    ("text", "known", "unknown"),
    [
        ("DS-1001: Invalid Credentials", ["DS-1001"], []),
        ("Re: [Ticket #12] ds-1001 again", ["DS-1001"], []),
        ("(COL‑11001) and MOB–6006.", ["COL-11001", "MOB-6006"], []),  # U+2011, U+2013
        ("SSO-9001, then DS-1001, then SSO-9001 again", ["SSO-9001", "DS-1001"], []),
        ("Error:WH-13001;", ["WH-13001"], []),
        ("new code RPT-8001 and XYZ-10001", [], ["RPT-8001", "XYZ-10001"]),
        ("lower-case abc-1234 is not reported", [], []),
        ("ISO-27001, SOC-2002, INV-20231, PO-12345", [], []),
        ("CVE-2024-12345 and DS-1001-2 are longer tokens", [], []),
        ("xDS-1001, DS-1001x, ABCDEF-1001, DS-123, DS-123456", [], []),
        ("order #1001 or DS 1001 without a dash", [], []),
    ],
)
def test_find_codes(catalog: Catalog, text: str, known: list[str], unknown: list[str]) -> None:
    found = catalog.find_codes(text)
    assert [entry.code for entry in found.known] == known
    assert list(found.unknown) == unknown


def test_get_is_case_insensitive(catalog: Catalog) -> None:
    entry = catalog.get("sso-9001")
    assert entry is not None and entry.code == "SSO-9001"
    assert catalog.get("SSO-9999") is None


def test_override_changes_only_the_given_fields(catalog: Catalog) -> None:
    changed = catalog.with_overrides({"codes": {"ds-1002": {"priority": "P0", "team": "DevOps"}}})
    before, after = catalog.codes["DS-1002"], changed.codes["DS-1002"]
    assert (after.priority, after.team) == (Priority.P0, "DevOps")
    assert after.titles == before.titles and after.steps == before.steps
    assert catalog.codes["DS-1002"].priority is Priority.P1  # the original is untouched


def test_override_adds_a_new_code_that_is_then_found(catalog: Catalog) -> None:
    changed = catalog.with_overrides(
        {
            "codes": {
                "RPT-8001": {
                    "area": "Reports",
                    "priority": "P2",
                    "team": "Product",
                    "title": {"en": "Scheduled report not sent"},
                    "steps": {"en": ["Check the report's recipients."]},
                }
            }
        }
    )
    found = changed.find_codes("RPT-8001 again")
    assert [entry.code for entry in found.known] == ["RPT-8001"]
    assert changed.codes["RPT-8001"].title("fr") == "Scheduled report not sent"
    assert catalog.find_codes("RPT-8001 again").unknown == ("RPT-8001",)


def test_override_replaces_ignored_prefixes(catalog: Catalog) -> None:
    changed = catalog.with_overrides({"ignore_prefixes": ["rpt"]})
    assert changed.find_codes("RPT-8001 ISO-27001").unknown == ("ISO-27001",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"codes": {"AB-1234": {"area": "X", "priority": "P1", "team": "T"}}}, "title"),
        ({"codes": {"DS1001": {"priority": "P1"}}}, "shaped"),
        ({"codes": {"DS-1001": {"priority": "P9"}}}, "priority"),
        ({"codes": {"DS-1001": {"owner": "me"}}}, "owner"),
        ({"codes": {"DS-1001": {"title": {"es": "Hola"}}}}, "English"),
        ({"codes": {"DS-1001": "P1"}}, "codes.DS-1001"),
        ({"ignore_prefixes": "ISO"}, "ignore_prefixes"),
        ({"code": {}}, "code\n  Extra inputs"),
    ],
)
def test_bad_override_is_refused_with_a_reason(
    catalog: Catalog, data: dict[str, object], message: str
) -> None:
    with pytest.raises(CatalogError, match=message):
        catalog.with_overrides(data)


def test_catalog_from_data_starts_empty() -> None:
    empty = catalog_from_data({})
    assert not empty.codes and empty.find_codes("DS-1001").unknown == ("DS-1001",)


def test_parse_catalog_reads_toml_and_refuses_broken_toml() -> None:
    text = """
        [codes.AB-1234]
        area = "Area"
        priority = "P3"
        team = "Product"
        title.en = "Title"
        steps.en = ["Step one.", "Step two."]
    """
    parsed = parse_catalog(text)
    assert parsed.codes["AB-1234"].troubleshooting("en") == ("Step one.", "Step two.")
    with pytest.raises(CatalogError, match="TOML"):
        parse_catalog("[codes.AB-1234")


def test_catalog_survives_pickling_to_the_parse_workers(catalog: Catalog) -> None:
    copy = pickle.loads(pickle.dumps(catalog))
    assert copy == catalog
    original, entry = catalog.get("DS-1001"), copy.get("DS-1001")
    assert original is not None and entry is not None
    assert entry.title("es") == original.title("es") and entry.steps == original.steps
    with pytest.raises(TypeError):
        entry.titles["en"] = "changed"  # type: ignore[index]  # still read-only
