"""Tests for template rendering: every template in every locale, escaping, fallbacks, Babel."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from click.testing import CliRunner

from mailproc.cli.templates import templates
from mailproc.core.locale_policy import SUPPORTED_LOCALES
from mailproc.core.model import Plan
from mailproc.outbound.contexts import TEMPLATES, CommandErrorContext, CommandProblem
from mailproc.outbound.i18n import catalog_path, compatible
from mailproc.outbound.render import Renderer, RenderError, mailto
from mailproc.outbound.samples import (
    SAMPLES,
    UNKNOWN_SENDER_SAMPLES,
    check_templates,
    ticket_number_of,
)
from mailproc.outbound.values import Company
from mailproc.resources import resource_path

CUSTOMER_TEMPLATES = {
    "acknowledgment",
    "escalation_notice",
    "sla_breach_apology",
    "refund_confirmation",
    "low_satisfaction_followup",
    "survey_request",
    "resolved_notice",
    "agent_reply",
    "incident_resolved",
    "incident_notice",
    "mail_unreadable",
}
# Words that only the right language's catalog produces (footers of both layouts).
MARKERS = {
    "en": {"customer": "simply reply to this email", "staff": "Automatic notification"},
    "es": {"customer": "responder a este correo", "staff": "Notificación automática"},
    "fr": {"customer": "répondre à cet e-mail", "staff": "Notification automatique"},
}
PAYLOAD = "<script>alert(1)</script> {{ 7*191 }} {% if true %}X{% endif %} %(number)s"
# Fields that are codes or addresses, not free text: keep them valid.
NOT_FREE_TEXT = {"timezone", "mail_language", "reply_locale", "reply_address", "email", "currency"}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_renders_in_every_locale(renderer: Renderer, name: str, locale: str) -> None:
    mail = renderer.render(SAMPLES[name], locale)
    number = ticket_number_of(SAMPLES[name])
    assert mail.subject and "\n" not in mail.subject
    if number is not None:  # knowledge-base and quarantine mail is about no ticket
        assert str(number) in mail.text and str(number) in mail.html
    audience = "customer" if name in CUSTOMER_TEMPLATES else "staff"
    for other, markers in MARKERS.items():
        assert (markers[audience] in mail.text) is (other == locale), other
        assert (markers[audience] in mail.html) is (other == locale), other
    assert f'<html lang="{locale}">' in mail.html
    assert mail.text.endswith("\n") and "\n\n\n" not in mail.text


def test_shipped_templates_and_catalogs_have_no_problems(renderer: Renderer) -> None:
    assert check_templates(renderer) == []
    assert renderer.fallbacks("es") == renderer.fallbacks("fr") == frozenset()


def _hostile(value: Any, name: str = "") -> Any:
    """``value`` with every free-text string (customer data) replaced by PAYLOAD."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _hostile(getattr(value, f.name), f.name) for f in dataclasses.fields(value)
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(_hostile(item, name) for item in value)
    if isinstance(value, str) and not hasattr(value, "value") and name not in NOT_FREE_TEXT:
        return PAYLOAD
    return value


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_customer_text_is_data_escaped_in_html_and_literal_everywhere(
    renderer: Renderer, name: str, locale: str
) -> None:
    mail = renderer.render(_hostile(SAMPLES[name]), locale)
    assert "<script>" not in mail.html
    assert "&lt;script&gt;" in mail.html
    for part in (mail.text, mail.html):
        assert "{{ 7*191 }}" in part
        assert "{% if true %}X{% endif %}" in part
        assert "%(number)s" in part
        assert "1337" not in part


def test_agent_reply_subject_carries_the_customer_subject_literally(renderer: Renderer) -> None:
    sample = SAMPLES["agent_reply"]
    context = dataclasses.replace(
        sample, ticket=dataclasses.replace(sample.ticket, subject="Help {{ 7*7 }}\r\n\tnow")
    )
    assert renderer.render(context, "en").subject == "Re: Help {{ 7*7 }} now"


def test_an_unsupported_locale_raises_render_error(renderer: Renderer) -> None:
    with pytest.raises(RenderError, match="unsupported locale"):
        renderer.render(SAMPLES["acknowledgment"], "de")


def test_each_context_names_its_own_template_and_has_a_sample() -> None:
    # The template comes from the context's class, so a context can no longer be rendered
    # with another template's name: the registry maps each name back to its one class.
    assert all(TEMPLATES[context.template] is context for context in TEMPLATES.values())
    assert {sample.template for sample in SAMPLES.values()} == set(TEMPLATES)
    assert all(type(SAMPLES[name]) is TEMPLATES[name] for name in TEMPLATES)


def test_naive_datetimes_and_unknown_zones_are_refused(renderer: Renderer) -> None:
    sample = SAMPLES["acknowledgment"]
    naive = dataclasses.replace(
        sample,
        first_response=dataclasses.replace(sample.first_response, due=dt.datetime(2025, 6, 9, 12)),
    )
    with pytest.raises(RenderError, match="naive"):
        renderer.render(naive, "en")
    lost = dataclasses.replace(
        sample, customer=dataclasses.replace(sample.customer, timezone="Mars/Olympus")
    )
    with pytest.raises(RenderError, match="time zone"):
        renderer.render(lost, "en")


def test_undefined_variables_fail_instead_of_rendering_empty(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(resource_path("templates"), templates)
    subject = templates / "acknowledgment" / "subject.txt"
    subject.write_text("{{ no_such_field }}\n", encoding="utf-8")
    renderer = Renderer(templates_dir=templates)
    with pytest.raises(RenderError, match="no_such_field"):
        renderer.render(SAMPLES["acknowledgment"], "en")
    assert any("no_such_field" in problem for problem in check_templates(renderer))


def test_babel_formats_dates_times_money_and_durations_per_locale(renderer: Renderer) -> None:
    en = renderer.render(SAMPLES["acknowledgment"], "en").text
    es = renderer.render(SAMPLES["acknowledgment"], "es").text
    fr = renderer.render(SAMPLES["sla_breach_apology"], "fr").text
    # 18:30 UTC is 20:30 in Madrid, the customer's zone.
    assert "within 4 hours" in en and "June 9, 2025, 8:30\u202fPM" in en
    assert "4 horas" in es and "lunes, 9 de junio de 2025, 20:30" in es
    assert "50,00\xa0$US" in fr and "4\xa0heures" in fr
    refund = renderer.render(SAMPLES["refund_confirmation"], "es")
    assert "149,00\xa0US$" in refund.text


def test_survey_offers_one_mailto_link_per_score(renderer: Renderer) -> None:
    html = renderer.render(SAMPLES["survey_request"], "fr").html
    hrefs = [chunk.split('"', 1)[0] for chunk in html.split('href="')[1:]]
    assert len(hrefs) == 5
    for score, href in zip((5, 4, 3, 2, 1), hrefs, strict=True):
        url = urlsplit(href.replace("&amp;", "&"))
        query = parse_qs(url.query)
        assert (url.scheme, url.path) == ("mailto", "support+12345-k7x2q9@dataflow.com")
        assert query["subject"] == [f"[Ticket #12345] Note de satisfaction\xa0: {score}/5"]
        assert query["body"][0].startswith(f"{score}\n")


def test_mailto_quotes_everything_but_the_address() -> None:
    assert mailto("a+b@x.com", "Re: 1 & 2", "x=y") == (
        "mailto:a+b@x.com?subject=Re%3A%201%20%26%202&body=x%3Dy"
    )


def test_phone_is_offered_only_on_plans_with_phone_support() -> None:
    renderer = Renderer(Company(phone="+34 900 000 000"))
    sample = SAMPLES["acknowledgment"]
    with_phone = renderer.render(sample, "en").text
    starter_ticket = dataclasses.replace(sample.ticket, plan=Plan.STARTER)
    starter = dataclasses.replace(sample, ticket=starter_ticket)
    without_phone = renderer.render(starter, "en").text
    assert "+34 900 000 000" in with_phone
    assert "+34 900 000 000" not in without_phone


def _partial_catalog(tmp_path: Path, drop: str, break_: str) -> Path:
    """A Spanish catalog missing ``drop`` and with a wrong placeholder in ``break_``."""
    source = resource_path("locales") / "es" / "LC_MESSAGES" / "mailproc.po"
    with source.open("rb") as handle:
        catalog = read_po(handle, locale="es")
    catalog.delete(drop)
    catalog[break_].string = "Su ticket #%(numero)s"
    target = catalog_path(tmp_path, "es")
    target.parent.mkdir(parents=True)
    with target.open("wb") as handle:
        write_mo(handle, catalog)
    return tmp_path


def test_missing_or_broken_translations_fall_back_to_english_string_by_string(
    tmp_path: Path,
) -> None:
    dropped = "Your Support Request"
    broken = "To add information to ticket #%(number)s, simply reply to this email."
    renderer = Renderer(locales_dir=_partial_catalog(tmp_path, dropped, broken))
    mail = renderer.render(SAMPLES["acknowledgment"], "es")
    assert mail.subject == dropped
    assert "To add information to ticket #12345, simply reply to this email." in mail.text
    assert "Gracias por ponerse en contacto" in mail.text
    assert renderer.fallbacks("es") >= {dropped, broken}
    problems = {p for p in check_templates(renderer) if p.startswith("es:")}
    assert problems == {f"es: no translation, English shown: {m!r}" for m in (dropped, broken)}


def test_a_missing_catalog_means_english_and_a_reported_problem(tmp_path: Path) -> None:
    renderer = Renderer(locales_dir=tmp_path)
    mail = renderer.render(SAMPLES["acknowledgment"], "fr")
    assert mail.subject == "Your Support Request"
    assert any(
        problem.startswith("fr: no compiled catalog") for problem in check_templates(renderer)
    )


def test_compatible_demands_the_same_placeholders_and_a_clean_format() -> None:
    assert compatible("Ticket #%(n)s", "Ticket n.º %(n)s")
    assert not compatible("Ticket #%(n)s", "Ticket")
    assert not compatible("Ticket #%(n)s", "Ticket %(n)s %(m)s")
    assert not compatible("Done", "100 % fait")
    assert compatible("100%% done", "100 %% fait")


def test_command_error_without_a_ticket_renders_without_a_number(renderer: Renderer) -> None:
    context = CommandErrorContext(
        agent_name="Eve", problems=(CommandProblem("#close", "no ticket"),)
    )
    mail = renderer.render(context, "en")
    assert "Your email could not be carried out:" in mail.text
    assert "> #close" in mail.text and "Problem: no ticket" in mail.text
    assert ticket_number_of(context) is None


def test_rendering_is_fast_once_warm(renderer: Renderer) -> None:
    jobs = [(name, locale) for name in TEMPLATES for locale in SUPPORTED_LOCALES]
    for name, locale in jobs:
        renderer.render(SAMPLES[name], locale)
    start = time.perf_counter()
    for name, locale in jobs * 5:
        renderer.render(SAMPLES[name], locale)
    per_mail = (time.perf_counter() - start) / (len(jobs) * 5)
    assert per_mail < 0.01


def test_cli_renders_a_sample_and_checks_everything() -> None:
    runner = CliRunner()
    rendered = runner.invoke(templates, ["render", "acknowledgment", "--locale", "es"])
    assert rendered.exit_code == 0
    assert rendered.output.startswith("Subject: Su solicitud de soporte\n\nHola, Ana García:")
    html = runner.invoke(templates, ["render", "survey_request", "--part", "html"])
    assert html.exit_code == 0 and html.output.startswith("<!DOCTYPE html>")
    checked = runner.invoke(templates, ["check"])
    assert checked.exit_code == 0
    assert f"{len(TEMPLATES)} templates x 3 locales: no problems" in checked.output
    unknown = runner.invoke(templates, ["render", "nope"])
    assert unknown.exit_code == 2


# -- the unknown-sender wording (a sender not in the customer list) -----------------------------

UNKNOWN_WORDING = ("acknowledgment", "refund_confirmation", "agent_reply")


@pytest.mark.parametrize("name", UNKNOWN_WORDING)
def test_the_check_renders_each_unknown_sender_variant_in_every_locale(
    tmp_path: Path, name: str
) -> None:
    """A fault only an unknown sender's mail reaches is found by ``templates check``."""
    templates = tmp_path / "templates"
    shutil.copytree(resource_path("templates"), templates)
    body = templates / name / "body.txt"
    fault = "{% if not customer.known %}{{ no_such_field }}{% endif %}"
    body.write_text(fault + body.read_text(encoding="utf-8"), encoding="utf-8")
    problems = check_templates(Renderer(templates_dir=templates))
    assert len(problems) == len(SUPPORTED_LOCALES), problems
    for locale, problem in zip(SUPPORTED_LOCALES, problems, strict=True):
        assert problem.startswith(f"{name} (unknown sender) ({locale}): ")
        assert "no_such_field" in problem


def test_the_check_finds_an_untranslated_string_of_the_unknown_sender_wording(
    tmp_path: Path,
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(resource_path("templates"), templates)
    body = templates / "acknowledgment" / "body.txt"
    text = body.read_text(encoding="utf-8")
    branch = "{% if not customer.known %}"
    assert branch in text
    body.write_text(text.replace(branch, branch + '{{ _("Only a stranger reads this.") }}'))
    problems = check_templates(Renderer(templates_dir=templates))
    assert problems == [
        f"{locale}: no translation, English shown: 'Only a stranger reads this.'"
        for locale in ("es", "fr")
    ]


UNKNOWN_WORDS = {  # the prospect paragraph of the acknowledgment; no plan named anywhere
    "en": ("Dear Jane Doe", "is not linked to a DataFlow customer account yet"),
    "es": ("Hola, Jane Doe:", "todavía no está vinculada a ninguna cuenta de cliente"),
    "fr": ("Bonjour Jane Doe,", "n'est encore liée à aucun compte client DataFlow"),
}


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_unknown_sender_samples_read_as_to_an_unknown_sender(
    renderer: Renderer, locale: str
) -> None:
    assert set(UNKNOWN_SENDER_SAMPLES) == set(UNKNOWN_WORDING)
    greeting, prospect = UNKNOWN_WORDS[locale]
    for name, sample in UNKNOWN_SENDER_SAMPLES.items():
        assert type(sample) is TEMPLATES[name]
        mail = renderer.render(sample, locale)
        hello = "Hi Jane," if name == "agent_reply" else greeting  # the agent's own words
        assert mail.text.startswith(hello), (name, mail.text)
        assert "Starter" not in mail.text and "Enterprise" not in mail.text, (name, mail.text)
        assert (prospect in mail.text) is (name == "acknowledgment"), name
        known = renderer.render(SAMPLES[name], locale).text
        assert "Ana" in known and "Jane" not in known and prospect not in known


def test_cli_renders_the_unknown_sender_sample() -> None:
    runner = CliRunner()
    rendered = runner.invoke(
        templates, ["render", "acknowledgment", "--unknown-sender", "--locale", "fr"]
    )
    assert rendered.exit_code == 0, rendered.output
    assert "Bonjour Jane Doe," in rendered.output and UNKNOWN_WORDS["fr"][1] in rendered.output
    same = runner.invoke(templates, ["render", "survey_request", "--unknown-sender"])
    assert same.exit_code == 2 and "reads the same to anyone" in same.output
    checked = runner.invoke(templates, ["check"])
    assert checked.exit_code == 0
    assert "(3 unknown-sender samples included)" in checked.output
