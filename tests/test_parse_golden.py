"""Golden messages written by the team: every field the parser promises, per message."""

from __future__ import annotations

import pytest
from conftest import GOLDEN

from mailproc.core.html_text import html_to_text
from mailproc.core.limits import IntakeLimits
from mailproc.core.parse import parse_message, sanitize_filename

CASES = {
    "multipart_alternative.eml": {
        "message_id": "CAF8x2kN-7d1@mail.northwind-analytics.example",
        "subject": "DS-1001: Invalid Credentials when connecting Snowflake",
        "from": ("Laura Chen", "laura@northwind-analytics.example"),
        "body_source": "plain",
        "body_has": ["DS-1001: Invalid\nCredentials", "Laura Chen"],
        "attachments": [],
        "languages": (),
    },
    "html_only.eml": {
        "message_id": "0100018c-html-only-77@email.trailmixfit.example",
        "subject": "Mobile app stuck on splash screen (MOB-6006)",
        "from": ("Hannah Kim", "hannah@trailmixfit.example"),
        "body_source": "html",
        "body_has": ["MOB-6006: App Not Loading", "App version 4.2.0", "TrailMix Fitness"],
        "body_lacks": ["alert(", "<b>", "color: red"],
        "attachments": [],
        "languages": (),
    },
    "attachments.eml": {
        "message_id": "20261126111542.GA4021@streamwise.example",
        "subject": "API-4004 Too Many Requests is breaking our nightly sync",
        "from": ("Daniel Okafor", "daniel@streamwise.example"),
        "body_source": "plain",
        "body_has": ["API-4004: Too Many Requests"],
        "attachments": [("api-log.csv", "text/csv", 96), ("invoicefdp.exe", "application/pdf", 45)],
        "languages": (),
    },
    "encoded_headers.eml": {
        "message_id": "atlas.2026.11.26.133000@atlasinsurance.example",
        "subject": "SSO-9001: Login Failure – all users locked out",
        "from": ("Robert Fitzgérald", "Robert.Fitzgerald@AtlasInsurance.example"),
        "to_name": "Support Données",
        "body_source": "plain",
        "body_has": ["SSO-9001"],
        "attachments": [],
        "languages": ("en-us",),
    },
    "spanish.eml": {
        "message_id": "a1b2c3.sierra@gruposierra.example",
        "subject": "Los comentarios no cargan (COL-11001)",
        "from": ("María Fernanda López", "maria@gruposierra.example"),
        "body_source": "plain",
        "body_has": ["sección de comentarios", "¿Podrían revisarlo?"],
        "attachments": [],
        "languages": ("es-mx",),
    },
    "french.eml": {
        "message_id": "5f2e.riviere@banqueriviere.example",
        "subject": "Connexion impossible à la base (DS-1002)",
        "from": ("Antoine Moreau", "antoine@banqueriviere.example"),
        "body_source": "plain",
        "body_has": ["délai de connexion dépassé", "Banque Rivière"],
        "attachments": [],
        "languages": (),
    },
    "empty_plain_with_html.eml": {
        "message_id": "empty-plain-1@metrotransit.example",
        "subject": "Map widget shows wrong stops",
        "from": ("Isabella Rossi", "isabella@metrotransit.example"),
        "body_source": "html",
        "body_has": ["shows stops in the wrong place (MOB-6007)"],
        "attachments": [],
        "languages": (),
    },
    "unknown_charset.eml": {
        "message_id": "unknown-charset-7@outbackmining.example",
        "subject": "Formula error in calculated field",
        "from": ("Jack Wilson", "jack@outbackmining.example"),
        "body_source": "plain",
        "body_has": ["CALC-7007: Invalid Formula"],
        "defect_has": "unknown charset 'x-unknown'",
        "attachments": [],
        "languages": (),
    },
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_message(name: str) -> None:
    expected = CASES[name]
    parsed = parse_message((GOLDEN / name).read_bytes(), IntakeLimits())
    assert parsed.message_id == expected["message_id"]
    assert parsed.subject == expected["subject"]
    assert parsed.sender is not None
    assert (parsed.sender.name, parsed.sender.addr) == expected["from"]
    assert parsed.body_source == expected["body_source"]
    for snippet in expected["body_has"]:
        assert snippet in parsed.body_text
    for snippet in expected.get("body_lacks", []):
        assert snippet not in parsed.body_text
    got = [(a.filename, a.content_type, a.size) for a in parsed.attachments]
    assert got == expected["attachments"]
    assert parsed.content_language == expected["languages"]
    if "to_name" in expected:
        assert parsed.to[0].name == expected["to_name"]
    if "defect_has" in expected:
        assert any(expected["defect_has"] in d for d in parsed.defects)


def test_reply_headers_are_bare_ids() -> None:
    parsed = parse_message((GOLDEN / "reply.eml").read_bytes(), IntakeLimits())
    assert parsed.in_reply_to == ("CAF8x2kN-7d1@mail.northwind-analytics.example",)
    assert parsed.references == ("CAF8x2kN-7d1@mail.northwind-analytics.example",)
    assert parsed.date is not None and parsed.date.utcoffset() is not None
    assert parsed.date.isoformat() == "2026-11-26T16:40:00+00:00"


def test_attachment_content_is_hashed() -> None:
    parsed = parse_message((GOLDEN / "attachments.eml").read_bytes(), IntakeLimits())
    csv_part = parsed.attachments[0]
    assert csv_part.content.startswith(b"timestamp,status,endpoint")
    import hashlib

    assert csv_part.sha256 == hashlib.sha256(csv_part.content).hexdigest()


@pytest.mark.parametrize(
    ("raw_name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\report.pdf", "report.pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("\r\nBcc: x@y.com", "Bcc: x@y.com"),
        ("...hidden", "hidden"),
        ("", "attachment-3.pdf"),
    ],
)
def test_sanitize_filename(raw_name: str, expected: str) -> None:
    assert sanitize_filename(raw_name, "application/pdf", 3) == expected


def test_long_filename_keeps_extension() -> None:
    name = sanitize_filename("a" * 400 + ".xlsx", "application/octet-stream", 1)
    assert len(name) <= 150 and name.endswith(".xlsx")


def test_html_to_text_drops_scripts_and_styles() -> None:
    text = html_to_text("<style>x{}</style><script>evil()</script><p>Hello &amp; bye</p>")
    assert text == "Hello & bye"


def test_header_injection_in_encoded_subject_is_flattened() -> None:
    raw = (
        b"From: a@b.example\r\nTo: support@dataflow.com\r\n"
        b"Subject: =?utf-8?q?hello=0D=0ABcc:_victim@x.example?=\r\n\r\nbody\r\n"
    )
    parsed = parse_message(raw, IntakeLimits())
    assert "\r" not in parsed.subject and "\n" not in parsed.subject
    assert parsed.subject == "hello Bcc: victim@x.example"


def test_raw_8bit_headers_never_leave_surrogates() -> None:
    raw = "From: Jos\u00e9 <jose@x.example>\r\nSubject: Caf\u00e9 \u00e0 la carte\r\n\r\nhi\r\n"
    parsed = parse_message(raw.encode("latin-1"), IntakeLimits())
    assert parsed.subject == "Café à la carte"
    parsed_utf8 = parse_message(raw.encode("utf-8"), IntakeLimits())
    assert parsed_utf8.subject == "Café à la carte"
    assert parsed_utf8.sender is not None and parsed_utf8.sender.name == "José"
