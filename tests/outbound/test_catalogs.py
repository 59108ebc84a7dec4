"""Catalog tests: the .pot, .po and committed .mo files are complete and current."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from mailproc.core.locale_policy import SUPPORTED_LOCALES
from mailproc.outbound.i18n import CATALOG_DOMAIN, catalog_path, compatible

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "locales"
TRANSLATED = [locale for locale in SUPPORTED_LOCALES if locale != "en"]
REGENERATE = "see locales/README.md for the pybabel extract/update/compile commands"


def _template_messages() -> set[str]:
    """Every msgid the templates use, extracted the way ``pybabel extract`` does."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    return {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map
        )
    }


def _read_po(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def _ids(catalog: Catalog) -> set[str]:
    return {message.id for message in catalog if message.id and isinstance(message.id, str)}


@pytest.fixture(scope="module")
def template_messages() -> set[str]:
    messages = _template_messages()
    assert len(messages) > 50
    return messages


def test_the_pot_matches_the_templates(template_messages: set[str]) -> None:
    pot = _read_po(LOCALES / f"{CATALOG_DOMAIN}.pot")
    assert _ids(pot) == template_messages, REGENERATE


@pytest.mark.parametrize("locale", TRANSLATED)
def test_each_catalog_is_complete_and_has_no_stale_entries(
    template_messages: set[str], locale: str
) -> None:
    catalog = _read_po(LOCALES / locale / "LC_MESSAGES" / f"{CATALOG_DOMAIN}.po", locale)
    assert not (template_messages - _ids(catalog)), f"missing in {locale}; {REGENERATE}"
    assert not (_ids(catalog) - template_messages), f"stale in {locale}; {REGENERATE}"
    assert not list(catalog.obsolete), f"obsolete entries in {locale}"
    untranslated = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
    assert untranslated == [], f"untranslated or fuzzy in {locale}"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_each_translation_keeps_the_placeholders_of_its_source(locale: str) -> None:
    catalog = _read_po(LOCALES / locale / "LC_MESSAGES" / f"{CATALOG_DOMAIN}.po", locale)
    assert [(message.id, errors) for message, errors in catalog.check()] == []
    broken = [m.id for m in catalog if m.id and not compatible(str(m.id), str(m.string))]
    assert broken == []


@pytest.mark.parametrize("locale", TRANSLATED)
def test_each_committed_mo_is_compiled_from_the_current_po(locale: str) -> None:
    catalog = _read_po(LOCALES / locale / "LC_MESSAGES" / f"{CATALOG_DOMAIN}.po", locale)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    committed = catalog_path(LOCALES, locale)
    assert committed.read_bytes() == compiled.getvalue(), f"{committed} is stale; {REGENERATE}"
    with committed.open("rb") as handle:
        assert {m.id: m.string for m in read_mo(handle) if m.id}


def test_english_needs_no_catalog() -> None:
    assert not catalog_path(LOCALES, "en").exists()
