"""compose_bytes writes exactly the bytes compose's message serializes to (CRLF), header checks
included, for every template and locale and for awkward headers."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproc.core.model import Address
from mailproc.outbound.compose import AttachmentRef, AutoSubmitted, Envelope, HeaderError, compose
from mailproc.outbound.render import RenderedMail, Renderer
from mailproc.outbound.samples import SAMPLES
from mailproc.outbound.wire import compose_bytes

GOLDEN = Path(__file__).parent / "golden"
WHEN = dt.datetime(2025, 6, 9, 14, 31, 5, tzinfo=dt.UTC)


def _envelope(**changes: object) -> Envelope:
    base = Envelope(
        sender=Address("DataFlow Support", "support@dataflow.com"),
        to=(Address("Ana García", "ana.garcia@example.com"),),
        reply_to=Address("", "support+12345-k7x2q9@dataflow.com"),
        message_id="ticket-12345-acknowledgment.k7x2q9aa@dataflow.com",
        date=WHEN,
        auto_submitted=AutoSubmitted.AUTO_REPLIED,
        ticket_number=12345,
        in_reply_to="CAF=abc123@mail.example.com",
        references=("CAF=abc123@mail.example.com",),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _stdlib(mail: RenderedMail, envelope: Envelope) -> bytes:
    message = compose(mail, envelope)
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


ENVELOPES = {
    "reply": _envelope(),
    "generated, cc, long thread": _envelope(
        auto_submitted=AutoSubmitted.AUTO_GENERATED,
        cc=(Address("Marco Rossi", "marco.rossi@dataflow.com"), Address("", "b@x.example")),
        in_reply_to=None,
        references=tuple(f"thread-{n}-{'x' * 30}@mail.example.com" for n in range(25)),
    ),
    "agent, no ticket, quoted names": _envelope(
        auto_submitted=AutoSubmitted.NO,
        ticket_number=None,
        sender=Address('Dr. "Bob" O\'Neil, Support', "bob@dataflow.com"),
        to=(Address("Zoë Ünal-Ørsted", "zoe@bücher.example"), Address("x", "y@z.example")),
    ),
}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.mark.parametrize("envelope", sorted(ENVELOPES))
@pytest.mark.parametrize("locale", ["en", "es", "fr"])
@pytest.mark.parametrize("template", sorted(SAMPLES))
def test_the_bytes_are_compose_bytes_for_every_template(
    renderer: Renderer, template: str, locale: str, envelope: str
) -> None:
    mail = renderer.render(SAMPLES[template], locale)
    assert compose_bytes(mail, ENVELOPES[envelope]) == _stdlib(mail, ENVELOPES[envelope])


def test_the_golden_acknowledgment_comes_out_byte_for_byte(renderer: Renderer) -> None:
    mail = renderer.render(SAMPLES["acknowledgment"], "es")
    golden = (GOLDEN / "acknowledgment_es.eml").read_bytes()
    envelope = _envelope(message_id="ticket-12345-acknowledgment.k7x2q9aa@dataflow.com")
    assert compose_bytes(mail, envelope).replace(b"\r\n", b"\n") == golden


_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=120
)


@settings(max_examples=300, deadline=None)
@given(subject=_TEXT, name=_TEXT, body=st.text(max_size=400), html=st.text(max_size=200))
def test_the_bytes_are_compose_bytes_for_any_subject_name_and_body(
    subject: str, name: str, body: str, html: str
) -> None:
    mail = RenderedMail("acknowledgment", "fr", subject, body, html)
    envelope = _envelope(to=(Address(name, "ana@example.com"),), sender=Address(name, "s@x.io"))
    assert compose_bytes(mail, envelope) == _stdlib(mail, envelope)


def test_the_same_checks_refuse_the_same_headers() -> None:
    mail = RenderedMail("acknowledgment", "en", "Hi\r\nBcc: x@evil.example", "t\n", "h\n")
    with pytest.raises(HeaderError):
        compose_bytes(mail, _envelope())
    with pytest.raises(HeaderError):
        compose_bytes(RenderedMail("acknowledgment", "en", "Hi", "t", "h"), _envelope(to=()))


_CONTENT_TYPES = st.one_of(
    st.sampled_from(
        ["application/pdf", "text/plain", "image/png", "multipart/mixed", "", "weird", "a/b/c"]
    ),
    _TEXT,
)


@settings(max_examples=300, deadline=None)
@given(
    attached=st.lists(
        st.tuples(_TEXT, _CONTENT_TYPES, st.binary(max_size=300)), min_size=1, max_size=3
    ),
    body=st.text(max_size=200),
)
def test_the_bytes_of_mail_with_attachments_are_compose_bytes(
    attached: list[tuple[str, str, bytes]], body: str
) -> None:
    """Any names (RFC 2231 folding, non-ASCII), declared types and bytes (none at all, many
    lines of base64), the same attachment twice."""
    files = {f"{index:064x}": data for index, (_, _, data) in enumerate(attached)}
    refs = tuple(
        AttachmentRef(f"{index:064x}", name, content_type, len(data))
        for index, (name, content_type, data) in enumerate(attached)
    )
    envelope = _envelope(attachments=(*refs, refs[0]))
    mail = RenderedMail("new_ticket_alert", "en", "New ticket", body, "<p>x</p>\n")
    message = compose(mail, envelope, files=files)
    expected = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    assert compose_bytes(mail, envelope, files) == expected


@pytest.mark.parametrize("template", sorted(SAMPLES))
def test_a_real_alert_with_attachments_comes_out_as_compose_writes_it(
    renderer: Renderer, template: str
) -> None:
    data = b"%PDF-1.4 invoice" + bytes(range(256)) * 40
    invoice = AttachmentRef("ab" * 32, "Facture n° 2026-114 (mars).pdf", "application/pdf", 1)
    log = AttachmentRef("cd" * 32, "sync.log", "text/plain", 3)
    envelope = _envelope(attachments=(invoice, log))
    mail = renderer.render(SAMPLES[template], "fr")
    files = {invoice.sha256: data, log.sha256: b"ok\n"}
    message = compose(mail, envelope, files=files)
    expected = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    assert compose_bytes(mail, envelope, files) == expected


def test_an_attachment_without_its_bytes_is_refused_as_compose_refuses_it() -> None:
    attachment = AttachmentRef("ab" * 32, "invoice.pdf", "application/pdf", 3)
    mail = RenderedMail("acknowledgment", "en", "Invoice", "See attached.\n", "<p>See</p>\n")
    envelope = _envelope(attachments=(attachment,))
    with pytest.raises(HeaderError, match="its bytes are not stored"):
        compose(mail, envelope, files={})
    with pytest.raises(HeaderError, match="its bytes are not stored"):
        compose_bytes(mail, envelope, {})


_WORDS = st.from_regex(r"[A-Za-z0-9]{1,12}( [A-Za-z0-9]{1,12}){0,5}", fullmatch=True)
_ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=90)
_LOCAL = st.from_regex(r"[A-Za-z0-9_+=-]{1,20}(\.[A-Za-z0-9_+=-]{1,10}){0,2}", fullmatch=True)
_DOMAIN = st.from_regex(r"[a-z0-9]{1,15}(\.[a-z0-9]{1,12}(-[a-z0-9]{1,3})?){1,3}", fullmatch=True)


@settings(max_examples=400, deadline=None)
@given(
    names=st.lists(st.one_of(st.just(""), _WORDS), min_size=1, max_size=3),
    local=_LOCAL,
    domain=_DOMAIN,
    subject=_ASCII,
    id_local=_LOCAL,
    when=st.datetimes(
        min_value=dt.datetime(1900, 1, 1),
        max_value=dt.datetime(2200, 1, 1),
        timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5, minutes=-30))]),
    ),
    generated=st.booleans(),
)
def test_plain_headers_written_without_the_email_package_are_its_bytes(
    names: list[str],
    local: str,
    domain: str,
    subject: str,
    id_local: str,
    when: dt.datetime,
    generated: bool,
) -> None:
    to = tuple(Address(name, f"{local}{n}@{domain}") for n, name in enumerate(names))
    envelope = _envelope(
        to=to,
        sender=Address(names[0], f"{local}@{domain}"),
        message_id=f"{id_local}@{domain}",
        in_reply_to=f"{id_local}.x@{domain}",
        references=(),
        date=when,
        ticket_number=None if generated else 7,
        auto_submitted=AutoSubmitted.AUTO_GENERATED if generated else AutoSubmitted.NO,
    )
    mail = RenderedMail("acknowledgment", "en", subject.strip() or "x", "Hi\n", "<p>Hi</p>\n")
    assert compose_bytes(mail, envelope) == _stdlib(mail, envelope)
