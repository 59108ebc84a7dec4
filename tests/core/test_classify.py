"""Classification: §2-§4 examples, English/Spanish/French twins, triage, intents, config rules."""

from __future__ import annotations

import datetime as dt

import pytest

from mailproc.core.catalog import Catalog, load_default_catalog
from mailproc.core.classify import (
    MAX_TEXT_CHARS,
    Classifier,
    ClassifyError,
    Intent,
    build_rules,
    classifier_from_config,
    fold_text,
)
from mailproc.core.classify_rules import DEFAULT_RULES
from mailproc.core.model import Priority
from mailproc.core.quotes import split_reply

P0, P1, P2, P3 = Priority.P0, Priority.P1, Priority.P2, Priority.P3


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_default_catalog()


@pytest.fixture(scope="module")
def classifier(catalog: Catalog) -> Classifier:
    return classifier_from_config(catalog)


# Every example and use case of procedures §2-§4 (customer, subject, body → classification).
SPEC_EXAMPLES = [
    (
        "§2.1 P0 example, customer 1003",
        "Error 503: Service Unavailable",
        "Hi, every page of DataFlow shows Error 503: Service Unavailable since 10:05.",
        P0,
        Intent.OUTAGE,
        [],
    ),
    (
        "§2.1 P1 example, customer 1001",
        "DS-1001: Invalid Credentials",
        "Our PostgreSQL source stopped syncing, the connection shows DS-1001.",
        P1,
        Intent.TECHNICAL_ISSUE,
        ["DS-1001"],
    ),
    (
        "§2.1 P2 example, customer 1017",
        "MOB-6006: App Not Loading",
        "The DataFlow app on my Android phone stays on the splash screen.",
        P2,
        Intent.TECHNICAL_ISSUE,
        ["MOB-6006"],
    ),
    (
        "§2.1 P3 example, customer 1011 (Spanish)",
        "Los comentarios no cargan",
        "Hola, en el tablero de ventas los comentarios no cargan (COL-11001). Saludos.",
        P3,
        Intent.TECHNICAL_ISSUE,
        ["COL-11001"],
    ),
    (
        "§2.2 use case, customer 1006",
        "API-4004: Too Many Requests",
        "Our nightly ETL integration fails with API-4004 after a few hundred calls.",
        P1,
        Intent.TECHNICAL_ISSUE,
        ["API-4004"],
    ),
    (
        "§3.2 use case, customer 1018 (Enterprise)",
        "SSO-9001: Login Failure",
        "None of our analysts can sign in through Okta this morning.",
        P1,
        Intent.TECHNICAL_ISSUE,
        ["SSO-9001"],
    ),
    (
        "§3.2 edge case, customer 1009 (UK)",
        "Warehouse connection",
        "We get DS-1002 when connecting to our Redshift warehouse.",
        P1,
        Intent.TECHNICAL_ISSUE,
        ["DS-1002"],
    ),
    (
        "§4.1 P0 example, customer 1036",
        "Platform outage",
        "The whole platform is down for us, every request returns DB-2002.",
        P0,
        Intent.OUTAGE,
        ["DB-2002"],
    ),
    (
        "§4.1 P1 example, customer 1001 (persistent DS-1001)",
        "Re: DS-1001 still failing",
        "We refreshed the credentials as advised but DS-1001 is still there.",
        P1,
        Intent.TECHNICAL_ISSUE,
        ["DS-1001"],
    ),
    (
        "§4.1 P2-P3 example, customer 1023",
        "Map widget fix",
        "Please fix the map widget in the mobile app: it stays grey and shows MOB-6007.",
        P2,
        Intent.TECHNICAL_ISSUE,
        ["MOB-6007"],
    ),
    (
        "§4.3 use case, customer 1004",
        "DB-2003: Slow Loading",
        "Our executive dashboard takes several minutes to load.",
        P2,
        Intent.TECHNICAL_ISSUE,
        ["DB-2003"],
    ),
    (
        "§4.3 edge case: API outage affecting many customers",
        "API down",
        "The API is down: all our integrations get connection errors.",
        P0,
        Intent.OUTAGE,
        [],
    ),
    (
        "§7.3 use case, customer 1025",
        "CALC-7007: Invalid Formula",
        "My calculated field SUM([Revenue] / [Units] shows CALC-7007.",
        P3,
        Intent.TECHNICAL_ISSUE,
        ["CALC-7007"],
    ),
    (
        "§6.2 use case, customer 1002 (Starter refund)",
        "Refund request",
        "I signed up 12 days ago and would like a refund of my Starter plan.",
        P3,
        Intent.REFUND_CANCELLATION,
        [],
    ),
]


@pytest.mark.parametrize(
    ("case", "subject", "body", "priority", "intent", "codes"),
    SPEC_EXAMPLES,
    ids=[row[0] for row in SPEC_EXAMPLES],
)
def test_procedure_examples(
    classifier: Classifier,
    case: str,
    subject: str,
    body: str,
    priority: Priority,
    intent: Intent,
    codes: list[str],
) -> None:
    result = classifier.classify(subject, body)
    assert (result.priority, result.intent, list(result.error_codes)) == (priority, intent, codes)
    assert not result.needs_triage, result.triage_reason
    assert result.priority_rule is not None or priority is P3


def test_partial_outage_is_flagged_for_triage_within_30_minutes(classifier: Classifier) -> None:
    # §2.2 edge case: a partial outage affecting several customers has an unclear priority
    result = classifier.classify(
        "Partial outage?", "Several of our customers are affected: EU dashboards fail to load."
    )
    assert (result.priority, result.intent, result.needs_triage) == (P1, Intent.OUTAGE, True)
    assert result.triage_reason is not None and "§2.2" in result.triage_reason
    assert result.triage_within == dt.timedelta(minutes=30)


def test_conflicting_signals_are_flagged_and_the_most_severe_wins(classifier: Classifier) -> None:
    result = classifier.classify("Error 503", "The iPhone app shows a blank screen, COL-11001.")
    assert result.priority is P0
    assert result.needs_triage
    assert result.triage_reason == (
        "conflicting signals: http-service-unavailable says P0, error-catalog says P3"
    )


def test_a_technical_mail_no_rule_prioritizes_goes_to_triage(classifier: Classifier) -> None:
    result = classifier.classify("Export", "The CSV export gives RPT-8001, can you check?")
    assert (result.priority, result.intent, result.needs_triage) == (
        P2,
        Intent.TECHNICAL_ISSUE,
        True,
    )
    assert result.unknown_codes == ("RPT-8001",)
    assert result.priority_rule is None
    assert (
        result.triage_reason == "technical mail matched no priority rule (unknown codes: RPT-8001)"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Our sales dashboard is down.",
        "El informe de ventas no carga.",
        "Le rapport ne se charge pas.",
    ],
)
def test_unclear_technical_mails_go_to_triage_in_every_language(
    classifier: Classifier, text: str
) -> None:
    result = classifier.classify("", text)
    assert (result.priority, result.intent, result.needs_triage) == (
        P2,
        Intent.TECHNICAL_ISSUE,
        True,
    )


def test_a_plain_thank_you_is_low_priority_without_triage(classifier: Classifier) -> None:
    result = classifier.classify("Thanks", "Thank you, that solved it!")
    assert (result.priority, result.intent, result.rule_hits) == (P3, Intent.OTHER, ())
    assert (result.needs_triage, result.triage_reason, result.triage_within) == (False, None, None)


def test_rule_hits_say_which_rules_fired_and_why(classifier: Classifier) -> None:
    result = classifier.classify("API-4004: Too Many Requests", "Our integration is blocked.")
    reasons = {hit.rule: hit.reason for hit in result.rule_hits}
    assert reasons["error-catalog"] == (
        "error code API-4004 (Too many requests): catalog priority P1, escalation team Engineering"
    )
    assert reasons["rate-limit-breaks-integration"] == 'text matched "too many requests"'
    assert result.priority_rule == "error-catalog"


def test_http_statuses_are_recorded(classifier: Classifier) -> None:
    result = classifier.classify(
        "HTTP/1.1 502 Bad Gateway", "Then error 429, then status: 504; v2.503 is our version."
    )
    assert result.http_statuses == (502, 429, 504)
    assert result.priority is P0


def test_quoted_history_does_not_count(classifier: Classifier) -> None:
    body = (
        "Thanks, the dashboards load again.\n\n"
        "On Mon, 9 Jun 2025 at 10:00, DataFlow Support <support@dataflow.com> wrote:\n"
        "> We are investigating DB-2002: all dashboards are down.\n"
    )
    result = classifier.classify("Re: [Ticket #12] Outage", split_reply(body).new_text)
    assert (result.priority, result.error_codes) == (P3, ())


# English mails and their Spanish and French twins classify alike.
TWINS = [
    (
        P0,
        Intent.OUTAGE,
        "All our dashboards are down since 9am.",
        "Todos nuestros tableros están caídos desde las 9.",
        "Tous nos tableaux de bord sont en panne depuis 9 h.",
    ),
    (
        P0,
        Intent.OUTAGE,
        "The API is unavailable, every call times out.",
        "La API no está disponible, todas las llamadas fallan.",
        "L’API est indisponible, tous les appels échouent.",
    ),
    (
        P1,
        Intent.TECHNICAL_ISSUE,
        "We cannot connect to our Snowflake data source since this morning.",
        "No podemos conectar con nuestra fuente de datos Snowflake desde esta mañana.",
        "Impossible de se connecter à notre source de données Snowflake depuis ce matin.",
    ),
    (
        P1,
        Intent.TECHNICAL_ISSUE,
        "SSO login fails for all our analysts.",
        "El SSO falla para todos nuestros analistas, no pueden iniciar sesión.",
        "La connexion SSO échoue pour tous nos analystes.",
    ),
    (
        P1,
        Intent.TECHNICAL_ISSUE,
        "Our integration receives error 429: too many requests.",
        "Nuestra integración recibe el error 429: demasiadas solicitudes.",
        "Notre intégration reçoit l’erreur 429 : trop de requêtes.",
    ),
    (
        P2,
        Intent.TECHNICAL_ISSUE,
        "The sales dashboard is very slow, it takes 3 minutes to load.",
        "El tablero de ventas va muy lento, tarda 3 minutos en cargar.",
        "Le tableau de bord des ventes met 3 minutes à se charger.",
    ),
    (
        P2,
        Intent.TECHNICAL_ISSUE,
        "The iPhone app crashes when I open a dashboard.",
        "La app móvil se cierra al abrir un tablero.",
        "L'application mobile plante à l'ouverture d'un tableau de bord.",
    ),
    (
        P3,
        Intent.TECHNICAL_ISSUE,
        "Small UI bug: the export button is misaligned.",
        "Pequeño error visual: el botón de exportar está desalineado.",
        "Petit bug d'affichage : le bouton d'export est mal aligné.",
    ),
    (
        P3,
        Intent.FEATURE_REQUEST,
        "Feature request: it would be great if we could schedule PDF exports.",
        "Nos gustaría poder programar exportaciones en PDF.",
        "Nous aimerions pouvoir planifier des exports PDF.",
    ),
    (
        P3,
        Intent.REFUND_CANCELLATION,
        "I want to cancel my subscription and get a refund.",
        "Quiero cancelar mi suscripción y solicitar un reembolso.",
        "Je souhaite résilier mon abonnement et obtenir un remboursement.",
    ),
    (
        P3,
        Intent.BILLING_QUESTION,
        "Could you send me the invoice for May?",
        "¿Podrían enviarme la factura de mayo?",
        "Pourriez-vous m'envoyer la facture de mai ?",
    ),
    (
        P3,
        Intent.SURVEY_ANSWER,
        "I'd rate the support 5/5, thanks!",
        "Mi calificación: 5 de 5, ¡gracias!",
        "Je donne une note de 5 sur 5, merci !",
    ),
]


@pytest.mark.parametrize(("priority", "intent", "en", "es", "fr"), TWINS, ids=[t[2] for t in TWINS])
def test_spanish_and_french_mails_classify_like_their_english_twins(
    classifier: Classifier, priority: Priority, intent: Intent, en: str, es: str, fr: str
) -> None:
    for text in (en, es, fr):
        result = classifier.classify("", text)
        assert (result.priority, result.intent, result.needs_triage) == (priority, intent, False), (
            text
        )


def test_fold_text() -> None:
    assert (
        fold_text("  Tableaux  de BORD\n\névalués – l’API  ") == "tableaux de bord evalues – l'api"
    )
    assert fold_text("ÇA NE FONCTIONNE PAS") == "ca ne fonctionne pas"


def test_only_the_start_of_a_very_long_mail_is_read(classifier: Classifier) -> None:
    filler = "Some context about our setup. " * (MAX_TEXT_CHARS // 30 + 1)
    assert classifier.classify("Hello", filler + "All dashboards are down.").priority is P3
    assert classifier.classify("All dashboards are down", filler).priority is P0


def test_config_overrides_a_rule_by_name_and_appends_new_ones(catalog: Catalog) -> None:
    classifier = classifier_from_config(
        catalog,
        {
            "rules": [
                {"name": "slow-dashboard", "priority": "P1"},
                {"name": "sso-login-failure", "enabled": False},
                {
                    "name": "vip-keyword",
                    "priority": "P0",
                    "intent": "outage",
                    "patterns": ["Board meeting in \\d+ minutes"],  # upper case and \d work
                },
                {"name": "webhook-code", "priority": "P2", "codes": ["wh-13001"]},
                {"name": "report-code", "priority": "P1", "codes": ["RPT-8001"]},
            ],
            "triage_within_minutes": 15,
            "unmatched_technical_priority": "P1",
        },
    )
    names = [rule.name for rule in classifier.rules]
    assert names[-3:] == ["vip-keyword", "webhook-code", "report-code"]
    assert "sso-login-failure" not in names
    defaults = [rule["name"] for rule in DEFAULT_RULES if rule["name"] != "sso-login-failure"]
    assert names[: len(defaults)] == defaults  # overridden in place, order kept
    assert classifier.classify("", "The dashboard is very slow.").priority is P1
    sso = classifier.classify("", "Okta SSO login fails.")
    assert "sso-login-failure" not in {hit.rule for hit in sso.rule_hits} and sso.needs_triage
    assert classifier.classify("", "Help, board meeting in 20 minutes!").priority is P0
    webhook = classifier.classify("", "WH-13001")
    hits = [(hit.rule, hit.priority) for hit in webhook.rule_hits]
    assert ("error-catalog", P1) in hits and ("webhook-code", P2) in hits
    assert (webhook.priority, webhook.priority_rule) == (P1, "error-catalog")
    report = classifier.classify("", "RPT-8001 in the export")  # a code the catalog lacks
    assert (report.priority, report.priority_rule, report.unknown_codes) == (
        P1,
        "report-code",
        ("RPT-8001",),
    )
    unclear = classifier.classify("", "Something is broken.")
    assert (unclear.priority, unclear.triage_within) == (P1, dt.timedelta(minutes=15))


def test_config_can_replace_all_default_rules(catalog: Catalog) -> None:
    classifier = classifier_from_config(
        catalog,
        {
            "replace_default_rules": True,
            "default_priority": "P2",
            "rules": [{"name": "only", "intent": "other", "triage": "look", "http": [500]}],
        },
    )
    assert [rule.name for rule in classifier.rules] == ["only"]
    assert classifier.classify("", "All dashboards are down.").priority is P2
    result = classifier.classify("", "error 500")
    assert (result.needs_triage, result.triage_reason) == (True, "look")


def test_accented_config_patterns_match_unaccented_mail(catalog: Catalog) -> None:
    rules = build_rules(
        [{"name": "x", "priority": "P1", "patterns": ["Échec de l'exportation"]}], ()
    )
    classifier = Classifier(catalog=catalog, rules=rules)
    assert classifier.classify("", "echec de l’exportation").priority is P1


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"priority": "P1", "patterns": ["x"]}, "without a name"),
        ({"name": "x", "priority": "P1"}, "no condition"),
        ({"name": "x", "patterns": ["x"]}, "no effect"),
        ({"name": "x", "priority": "P1", "patterns": ["(unclosed"]}, "bad pattern"),
        ({"name": "x", "priority": "P5", "patterns": ["x"]}, "priority"),
        ({"name": "x", "intent": "chitchat", "patterns": ["x"]}, "intent"),
        ({"name": "x", "priority": "P1", "pattern": ["x"]}, "pattern"),
        ({"name": "x", "catalog": True, "priority": "P1"}, "from the catalog only"),
        ({"name": "x", "catalog": True, "patterns": ["x"], "intent": "other"}, "catalog only"),
    ],
)
def test_bad_rules_are_refused_with_a_reason(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ClassifyError, match=message):
        build_rules([rule])


def test_bad_settings_are_refused(catalog: Catalog) -> None:
    with pytest.raises(ClassifyError, match="default_priority"):
        classifier_from_config(catalog, {"default_priority": "urgent"})
    with pytest.raises(ClassifyError, match="rule"):
        classifier_from_config(catalog, {"rule": []})
    with pytest.raises(ClassifyError, match="conflict_spread"):
        classifier_from_config(catalog, {"conflict_spread": 0})
