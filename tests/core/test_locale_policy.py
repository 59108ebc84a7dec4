"""Tests for the outbound locale choice: preference, §5.4 policy, mail language, English."""

from __future__ import annotations

import pytest

from mailproc.core.locale_policy import (
    COUNTRY_REGIONS,
    SUPPORTED_LOCALES,
    ChoiceReason,
    LocalePolicy,
    LocaleRule,
    Region,
    choose_locale,
    declared_language,
    detect_language,
)
from mailproc.core.model import Plan

SPANISH = "Hola, no puedo entrar a mi panel desde esta mañana y necesito los informes hoy."
FRENCH = "Bonjour, je n'arrive plus à me connecter au tableau de bord depuis ce matin."
ENGLISH = "Hi, I can't log in to my dashboard since this morning, please help."
GERMAN = "Hallo, ich kann mich seit heute Morgen nicht mehr im Dashboard anmelden."

# Short support mails written for this test (a subset of the set used to choose the
# detector): every one must be detected right or left undecided, never wrong.
LABELLED = [
    ("Our API calls keep failing with API-4004 Too Many Requests.", "en"),
    ("Could you please refund last month's charge? We were billed twice.", "en"),
    ("The dashboards have been down for an hour, this is blocking our whole team.", "en"),
    ("Users without admin rights get PERM-5005 when opening the sales dashboard.", "en"),
    ("I reset my password but the link has expired.", "en"),
    ("Nuestras llamadas a la API fallan con el error API-4004.", "es"),
    ("¿Podrían reembolsarme el cargo del mes pasado? Nos cobraron dos veces.", "es"),
    ("Los dashboards llevan una hora caídos y todo el equipo está bloqueado.", "es"),
    ("Restablecí la contraseña pero el enlace ha caducado.", "es"),
    ("No puedo añadir una nueva fuente de datos, el botón está desactivado.", "es"),
    ("Nos appels à l'API échouent avec l'erreur API-4004.", "fr"),
    ("Pourriez-vous rembourser le mois dernier ? Nous avons été débités deux fois.", "fr"),
    ("Les tableaux de bord sont indisponibles depuis une heure, toute l'équipe est bloquée.", "fr"),
    ("J'ai réinitialisé mon mot de passe mais le lien a expiré.", "fr"),
    ("Je ne peux pas ajouter de source de données, le bouton est grisé.", "fr"),
    ("Unsere API-Aufrufe schlagen mit Fehler API-4004 fehl.", "de"),
    ("Le chiamate API falliscono con l'errore API-4004.", "it"),
    ("Olá, não consigo entrar no painel desde esta manhã.", "pt"),
]


def test_with_the_override_a_spanish_preference_gets_spanish_whatever_the_plan() -> None:
    """``[locales] preference_overrides_policy = true``: the behaviour before issue 14.7."""
    policy = LocalePolicy(preference_overrides_policy=True)
    choice = choose_locale(
        preferred="es", plan=Plan.STARTER, country="US", text=ENGLISH, policy=policy
    )
    assert choice.locale == "es"
    assert choice.reason is ChoiceReason.PREFERENCE
    assert not choice.translation_requested


@pytest.mark.parametrize(
    ("preferred", "plan", "country", "text"),
    [
        ("es", Plan.STARTER, "US", ENGLISH),  # prefers Spanish, writes English
        ("fr", Plan.STARTER, "FR", FRENCH),  # customer 1013: Starter in France
        ("fr", Plan.ENTERPRISE, "CA", FRENCH),  # customer 1007: Enterprise, but in NA
        ("es", Plan.PROFESSIONAL, "ES", SPANISH),  # customer 1031: Professional in Spain
    ],
)
def test_a_preference_the_policy_does_not_offer_gets_english_and_a_translation_request(
    preferred: str, plan: Plan, country: str, text: str
) -> None:
    """§5.4: Spanish and French are for Enterprise customers in EMEA/LATAM only."""
    choice = choose_locale(preferred=preferred, plan=plan, country=country, text=text)
    assert (choice.locale, choice.reason) == ("en", ChoiceReason.NOT_OFFERED)
    assert choice.translation_requested


def test_an_offered_preference_is_written_without_a_translation_request() -> None:
    choice = choose_locale(preferred="fr", plan=Plan.ENTERPRISE, country="FR", text=ENGLISH)
    assert (choice.locale, choice.reason, choice.translation_requested) == (
        "fr",
        ChoiceReason.PREFERENCE,
        False,
    )


def test_non_enterprise_french_mail_gets_english_and_the_translation_flag() -> None:
    choice = choose_locale(preferred=None, plan=Plan.PROFESSIONAL, country="FR", text=FRENCH)
    assert choice.locale == "en"
    assert choice.mail_language == "fr"
    assert choice.translation_requested
    assert choice.reason is ChoiceReason.NOT_OFFERED


@pytest.mark.parametrize(
    ("country", "text", "expected"),
    [("FR", FRENCH, "fr"), ("BE", FRENCH, "fr"), ("MX", SPANISH, "es"), ("ES", SPANISH, "es")],
)
def test_enterprise_in_emea_or_latam_is_answered_in_its_language(
    country: str, text: str, expected: str
) -> None:
    choice = choose_locale(preferred=None, plan=Plan.ENTERPRISE, country=country, text=text)
    assert (choice.locale, choice.reason, choice.translation_requested) == (
        expected,
        ChoiceReason.POLICY,
        False,
    )


def test_enterprise_outside_emea_latam_gets_english_and_the_flag() -> None:
    choice = choose_locale(preferred=None, plan=Plan.ENTERPRISE, country="US", text=SPANISH)
    assert (choice.locale, choice.mail_language, choice.translation_requested) == ("en", "es", True)


def test_a_language_we_do_not_write_gets_english_and_the_flag() -> None:
    choice = choose_locale(preferred=None, plan=Plan.ENTERPRISE, country="DE", text=GERMAN)
    assert (choice.locale, choice.mail_language, choice.translation_requested) == ("en", "de", True)


def test_english_mail_needs_no_translation() -> None:
    choice = choose_locale(preferred=None, plan=Plan.ENTERPRISE, country="FR", text=ENGLISH)
    assert (choice.locale, choice.translation_requested) == ("en", False)


def test_preference_outside_the_allow_list_is_ignored() -> None:
    choice = choose_locale(preferred="de", plan=Plan.ENTERPRISE, country="FR", text=FRENCH)
    assert (choice.locale, choice.reason) == ("fr", ChoiceReason.POLICY)
    assert choose_locale(preferred="../../etc", plan=None, country=None).locale == "en"


def test_content_language_wins_over_detection() -> None:
    choice = choose_locale(
        preferred=None,
        plan=Plan.ENTERPRISE,
        country="ES",
        content_language=("fr-FR", "es"),
        text=SPANISH,
    )
    assert (choice.locale, choice.mail_language) == ("fr", "fr")


def test_unknown_sender_with_nothing_to_go_on_gets_plain_english() -> None:
    choice = choose_locale(preferred=None, plan=None, country=None, text="ok")
    assert choice.locale == "en"
    assert choice.mail_language is None
    assert not choice.translation_requested


def test_declared_language_takes_the_primary_subtag_of_the_first_usable_tag() -> None:
    assert declared_language(("ES-mx",)) == "es"
    assert declared_language(("x", "1234", "fr-CA")) == "fr"
    assert declared_language(()) is None


def test_region_overrides_and_custom_rules_change_the_offer() -> None:
    policy = LocalePolicy(
        rules=(
            LocaleRule(
                plans=frozenset({Plan.ENTERPRISE, Plan.PROFESSIONAL}),
                regions=frozenset({Region.EMEA, Region.NA}),
                locales=frozenset({"fr", "xx"}),
            ),
        ),
        region_overrides={"CA": Region.NA},
    )
    assert policy.offered(Plan.PROFESSIONAL, "ca") == {"en", "fr"}  # "xx" is not allow-listed
    assert policy.offered(Plan.STARTER, "FR") == {"en"}
    choice = choose_locale(
        preferred=None, plan=Plan.PROFESSIONAL, country="CA", text=FRENCH, policy=policy
    )
    assert choice.locale == "fr"


def test_the_default_policy_offers_spanish_and_french_to_enterprise_emea_latam_only() -> None:
    default = LocalePolicy()
    assert default.offered(Plan.ENTERPRISE, "AR") == {"en", "es", "fr"}
    assert default.offered(Plan.ENTERPRISE, "SN") == {"en", "es", "fr"}
    assert default.offered(Plan.ENTERPRISE, "CA") == {"en"}
    assert default.offered(Plan.ENTERPRISE, "JP") == {"en"}
    assert default.offered(Plan.PROFESSIONAL, "ES") == {"en"}
    assert default.offered(Plan.ENTERPRISE, None) == {"en"}
    assert default.region_of("zz") is None


def test_country_table_is_well_formed() -> None:
    assert len(COUNTRY_REGIONS) > 240
    assert all(len(code) == 2 and code.isupper() for code in COUNTRY_REGIONS)
    assert {COUNTRY_REGIONS[c] for c in ("GB", "DE", "AE", "ZA")} == {Region.EMEA}
    assert {COUNTRY_REGIONS[c] for c in ("MX", "BR", "CO", "GP")} == {Region.LATAM}
    assert SUPPORTED_LOCALES == ("en", "es", "fr")


def test_detection_is_right_or_undecided_never_wrong() -> None:
    results = [(detect_language(text), expected) for text, expected in LABELLED]
    wrong = [(got, expected) for got, expected in results if got not in (None, expected)]
    assert wrong == []
    assert sum(got == expected for got, expected in results) >= len(LABELLED) - 2


def test_detection_ignores_text_without_letters_and_long_tails() -> None:
    assert detect_language("") is None
    assert detect_language("12345 -- :-) ###") is None
    assert detect_language(" ".join([FRENCH] * 30 + [ENGLISH] * 3000)) == "fr"
