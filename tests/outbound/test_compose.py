"""Tests for outbound composition: golden messages, threading, subject tag, header injection."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import os
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproc.core.model import Address
from mailproc.outbound.build import thread_subject
from mailproc.outbound.compose import (
    MAX_REFERENCES,
    AutoSubmitted,
    Envelope,
    HeaderError,
    compose,
    make_message_id,
    tag_subject,
)
from mailproc.outbound.render import RenderedMail, Renderer
from mailproc.outbound.samples import SAMPLES

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MAILPROC_UPDATE_GOLDEN") == "1"  # regenerate after a deliberate change
WHEN = dt.datetime(2025, 6, 9, 14, 31, 5, tzinfo=dt.UTC)
SUPPORT = Address("DataFlow Support", "support@dataflow.com")
TOKEN_ADDRESS = Address("", "support+12345-k7x2q9@dataflow.com")
CUSTOMER = Address("Ana García", "ana.garcia@example.com")


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def _envelope(**changes: object) -> Envelope:
    base = Envelope(
        sender=SUPPORT,
        to=(CUSTOMER,),
        reply_to=TOKEN_ADDRESS,
        message_id=make_message_id("ticket-12345/acknowledgment", "k7x2q9aa", "dataflow.com"),
        date=WHEN,
        auto_submitted=AutoSubmitted.AUTO_REPLIED,
        ticket_number=12345,
        in_reply_to="CAF=abc123@mail.example.com",
        references=("CAF=abc123@mail.example.com",),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _mail(subject: str = "Your Support Request") -> RenderedMail:
    return RenderedMail("acknowledgment", "en", subject, "Hello\n", "<p>Hello</p>\n")


GOLDEN_CASES = {
    "acknowledgment_es": ("acknowledgment", "es", _envelope()),
    "survey_request_fr": (
        "survey_request",
        "fr",
        _envelope(
            auto_submitted=AutoSubmitted.AUTO_GENERATED,
            message_id=make_message_id("ticket-12345/survey", "p0q1r2s3", "dataflow.com"),
            in_reply_to=None,
            references=("CAF=abc123@mail.example.com", "ticket-12345-ack.k7x2q9aa@dataflow.com"),
        ),
    ),
    "new_ticket_alert_en": (
        "new_ticket_alert",
        "en",
        _envelope(
            to=(Address("Support agents", "agents@dataflow.com"),),
            cc=(Address("Marco Rossi", "marco.rossi@dataflow.com"),),
            auto_submitted=AutoSubmitted.AUTO_GENERATED,
            message_id=make_message_id("ticket-12345/new-ticket", "z9y8x7w6", "dataflow.com"),
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_composed_messages_match_their_golden_files(renderer: Renderer, case: str) -> None:
    name, locale, envelope = GOLDEN_CASES[case]
    raw = compose(renderer.render(SAMPLES[name], locale), envelope).as_bytes()
    golden = GOLDEN / f"{case}.eml"
    if UPDATE:
        golden.write_bytes(raw)
    assert raw == golden.read_bytes()


def test_a_composed_message_parses_back_to_its_parts(renderer: Renderer) -> None:
    mail = renderer.render(SAMPLES["acknowledgment"], "es")
    raw = compose(mail, _envelope()).as_bytes()
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Subject"] == "[Ticket #12345] Su solicitud de soporte"
    assert parsed["Content-Language"] == "es"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["Reply-To"] == "support+12345-k7x2q9@dataflow.com"
    assert parsed["Message-ID"] == "<ticket-12345-acknowledgment.k7x2q9aa@dataflow.com>"
    assert parsed["In-Reply-To"] == "<CAF=abc123@mail.example.com>"
    assert parsed["References"] == "<CAF=abc123@mail.example.com>"
    assert parsed["Date"] == "Mon, 09 Jun 2025 14:31:05 +0000"
    assert str(parsed["To"]) == "Ana García <ana.garcia@example.com>"
    plain, html = (parsed.get_body((kind,)) for kind in ("plain", "html"))
    assert plain is not None and html is not None
    assert plain.get_content() == mail.text
    assert html.get_content() == mail.html
    assert parsed.as_bytes().count(b"MIME-Version") == 1


def test_references_add_the_parent_once_and_keep_the_root_and_the_latest() -> None:
    thread = tuple(f"m{i}@x.example" for i in range(30))
    message = compose(_mail(), _envelope(in_reply_to="m29@x.example", references=thread))
    ids = str(message["References"]).split()
    assert len(ids) == MAX_REFERENCES
    assert ids[0] == "<m0@x.example>" and ids[-1] == "<m29@x.example>"
    message = compose(_mail(), _envelope(in_reply_to="p@x.example", references=("r@x.example",)))
    assert str(message["References"]) == "<r@x.example> <p@x.example>"


@pytest.mark.parametrize(
    ("subject", "number", "expected"),
    [
        ("Your Support Request", 12345, "[Ticket #12345] Your Support Request"),
        ("Re: [Ticket #12345] Help", 12345, "[Ticket #12345] Re: Help"),
        ("[ticket #12345] Re: RE: re: Help [TICKET # 12345]", 12345, "[Ticket #12345] Re: Help"),
        ("Fwd: [Ticket #999] Other ticket", 12345, "[Ticket #12345] Fwd: Other ticket"),
        ("  ", 7, "[Ticket #7]"),
        ("[Ticket #7] Your command", None, "Your command"),
    ],
)
def test_the_ticket_tag_appears_exactly_once(
    subject: str, number: int | None, expected: str
) -> None:
    assert tag_subject(subject, number) == expected


def test_the_tag_is_in_the_composed_subject_once() -> None:
    message = compose(_mail("Re: [Ticket #12345] Re: [Ticket #12345] Help"), _envelope())
    assert message["Subject"] == "[Ticket #12345] Re: Help"


INJECTIONS = ["\r\nBcc: victim@example.net", "\nX-Evil: 1", "\r", "\x00"]


def _injected_inputs(bad: str) -> list[tuple[RenderedMail, Envelope]]:
    mail = _mail()
    return [
        (_mail("Your request" + bad), _envelope()),
        (dataclasses.replace(mail, locale="en" + bad), _envelope()),
        (mail, _envelope(sender=Address("Support" + bad, SUPPORT.addr))),
        (mail, _envelope(sender=Address(SUPPORT.name, SUPPORT.addr + bad))),
        (mail, _envelope(to=(Address("Ana" + bad, CUSTOMER.addr),))),
        (mail, _envelope(to=(CUSTOMER, Address("", "b@example.com" + bad)))),
        (mail, _envelope(cc=(Address("Eve" + bad, "eve@example.com"),))),
        (mail, _envelope(reply_to=Address("", TOKEN_ADDRESS.addr + bad))),
        (mail, _envelope(message_id="id@dataflow.com" + bad)),
        (mail, _envelope(in_reply_to="parent@example.com" + bad)),
        (mail, _envelope(references=("root@example.com" + bad,))),
    ]


@pytest.mark.parametrize("bad", INJECTIONS, ids=repr)
def test_cr_lf_nul_in_any_header_value_is_refused(bad: str) -> None:
    for mail, envelope in _injected_inputs(bad):
        with pytest.raises(HeaderError):
            compose(mail, envelope)


@pytest.mark.parametrize(
    "envelope",
    [
        _envelope(to=()),
        _envelope(to=(Address("Ana", "not-an-address"),)),
        _envelope(to=(Address("José", "josé@example.com"),)),
        _envelope(reply_to=Address("", "a@b@c.com")),
        _envelope(message_id="no-domain"),
        _envelope(in_reply_to="has space@example.com"),
        _envelope(references=("<nested>@example.com",)),
        _envelope(date=dt.datetime(2025, 6, 9, 14, 31)),
    ],
)
def test_malformed_header_values_are_refused(envelope: Envelope) -> None:
    with pytest.raises(HeaderError):
        compose(_mail(), envelope)


def test_template_syntax_in_customer_text_stays_literal_through_composition(
    renderer: Renderer,
) -> None:
    sample = SAMPLES["agent_reply"]
    context = dataclasses.replace(
        sample,
        customer=dataclasses.replace(sample.customer, name="{{ 7*191 }}"),
        ticket=dataclasses.replace(sample.ticket, subject="{% for x in y %}{{ 7*191 }}"),
        body="{{ config }} {% include 'x' %}",
    )
    message = compose(
        renderer.render(context, "en"),
        _envelope(to=(Address("{{ 7*191 }}", CUSTOMER.addr),)),
    )
    assert message["Subject"] == "[Ticket #12345] Re: {% for x in y %}{{ 7*191 }}"
    assert str(message["To"]) == "{{ 7*191 }} <ana.garcia@example.com>"
    plain = message.get_body(("plain",))
    assert plain is not None and "{{ config }} {% include 'x' %}" in plain.get_content()
    assert b"1337" not in message.as_bytes()


def test_international_domains_are_sent_in_idna_form() -> None:
    message = compose(_mail(), _envelope(to=(Address("Zoë", "Zoe@Bücher.example"),)))
    assert str(message["To"]) == "Zoë <Zoe@xn--bcher-kva.example>"


def test_message_ids_are_stable_and_safe() -> None:
    first = make_message_id("ticket:12345/breach 2025-06-09T14:30Z", "AbC_9-x", "DataFlow.COM")
    assert first == "ticket-12345-breach-2025-06-09T14-30Z.AbC_9-x@dataflow.com"
    assert first == make_message_id(
        "ticket:12345/breach 2025-06-09T14:30Z", "AbC_9-x", "dataflow.com"
    )
    assert make_message_id("k", "r", "bücher.example") == "k.r@xn--bcher-kva.example"
    with pytest.raises(HeaderError):
        make_message_id("k", "r\r\n", "dataflow.com")
    with pytest.raises(HeaderError):
        make_message_id("k", "r", "not a domain")
    with pytest.raises(HeaderError):
        make_message_id("::", "r", "dataflow.com")


def test_auto_submitted_marks_replies_and_scheduled_mail_apart() -> None:
    replied = compose(_mail(), _envelope())
    generated = compose(_mail(), _envelope(auto_submitted=AutoSubmitted.AUTO_GENERATED))
    assert (replied["Auto-Submitted"], generated["Auto-Submitted"]) == (
        "auto-replied",
        "auto-generated",
    )
    assert replied["X-Auto-Response-Suppress"] == "All"


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=120),
        st.sampled_from(["=?utf-8?q?caf=C3=A9?=", "Re: =?iso-8859-1?b?Y2Fm6Q==?= down", "a\x00b"]),
        st.text(alphabet="=?qQbB-_ \u00e9\u2028\xa0\x01\x7f", max_size=40),
    )
)
def test_the_thread_subject_reads_as_the_email_package_reads_it(subject: str) -> None:
    """The fast way (printable, no encoded word) and the parse agree on every subject."""
    tagged = f"[Ticket #10001] {subject}"
    if "\r" in tagged or "\n" in tagged:  # refused before a mail is built
        return
    assert thread_subject(tagged) == str(policy.default.header_fetch_parse("Subject", tagged))
