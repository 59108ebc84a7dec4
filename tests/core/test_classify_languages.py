"""Issue 14 part 7: the same mail gets the same priority in English, Spanish and French.

The scenario mails (tests/data/classify_scenarios.toml) are realistic customer mails, the
same story told in each language, with and without accents; every named default rule must
fire in each language, and a security report is never "P3 other"."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from mailproc.core.catalog import load_default_catalog
from mailproc.core.classify import Classification, Classifier, Intent, classifier_from_config
from mailproc.core.classify_rules import DEFAULT_RULES
from mailproc.core.model import Priority

LANGUAGES = ("en", "es", "fr")
SCENARIOS: list[dict[str, Any]] = tomllib.loads(
    (Path(__file__).parent.parent / "data" / "classify_scenarios.toml").read_text("utf-8")
)["scenario"]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return classifier_from_config(load_default_catalog())


def classified(classifier: Classifier, scenario: dict[str, Any], language: str) -> Classification:
    mail = scenario[language]
    return classifier.classify(mail["subject"], mail["body"])


def test_the_scenario_set_is_large_enough() -> None:
    assert len(SCENARIOS) >= 30
    assert all(set(LANGUAGES) <= set(s) for s in SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_a_scenario_gets_one_priority_and_intent_in_every_language(
    classifier: Classifier, scenario: dict[str, Any]
) -> None:
    results = {lang: classified(classifier, scenario, lang) for lang in LANGUAGES}
    got = {lang: (str(r.priority), str(r.intent), r.priority_rule) for lang, r in results.items()}
    assert len(set(got.values())) == 1, got
    assert got["en"][:2] == (scenario["priority"], scenario["intent"])


def test_every_named_rule_fires_in_every_language(classifier: Classifier) -> None:
    fired = {
        lang: {hit.rule for s in SCENARIOS for hit in classified(classifier, s, lang).rule_hits}
        for lang in LANGUAGES
    }
    names = {rule["name"] for rule in DEFAULT_RULES}
    for lang in LANGUAGES:
        assert names - fired[lang] == set(), lang


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_french_data_source_failure_without_a_code_is_p1(
    classifier: Classifier, language: str
) -> None:
    """The issue's example: a connection failure worded without an error code."""
    scenario = next(s for s in SCENARIOS if s["name"] == "Snowflake connection failing, no code")
    result = classified(classifier, scenario, language)
    assert (result.priority, result.intent) == (Priority.P1, Intent.TECHNICAL_ISSUE)
    assert result.priority_rule == "data-source-connection-failure"
    assert result.error_codes == () and result.unknown_codes == ()


@pytest.mark.parametrize(
    "scenario",
    [s for s in SCENARIOS if s["intent"] == "security"],
    ids=lambda s: s["name"],
)
def test_a_security_report_is_p1_and_flagged_for_the_support_manager(
    classifier: Classifier, scenario: dict[str, Any]
) -> None:
    for language in LANGUAGES:
        result = classified(classifier, scenario, language)
        assert (result.priority, result.intent) == (Priority.P1, Intent.SECURITY), language
        assert result.needs_triage and result.triage_reason is not None
        assert "security report" in result.triage_reason


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Connection error", "The connection to the API gave an unknown error code."),
        ("Erreur de connexion", "Erreur de connexion inconnue lors de l'import du fichier."),
        ("Login page", "Could you add our logo to the login page? We made a login for Ana."),
        ("Security questionnaire", "Please fill in our vendor security questionnaire."),
    ],
)
def test_ordinary_mail_is_not_a_security_report(
    classifier: Classifier, subject: str, body: str
) -> None:
    assert classifier.classify(subject, body).intent is not Intent.SECURITY
