"""Quoted-reply stripping: new text, signature and quoted history in en, es, fr and de."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mailproc.core.limits import IntakeLimits
from mailproc.core.parse import parse_message
from mailproc.core.quotes import split_reply


def test_english_on_wrote_with_quote_marks() -> None:
    parts = split_reply(
        "The export works now, thanks!\n\n"
        "On Mon, Mar 3, 2025 at 10:15 AM Acme Support <support@help.acme.example> wrote:\n"
        "> Could you try the export again?\n"
        ">\n"
        "> Marta\n"
    )
    assert parts.new_text == "The export works now, thanks!"
    assert parts.quoted.startswith("On Mon, Mar 3, 2025")
    assert "> Marta" in parts.quoted


def test_spanish_quote_header_wrapped_over_two_lines() -> None:
    parts = split_reply(
        "Sigue sin funcionar el informe mensual.\n\n"
        "El lun, 3 mar 2025 a las 10:15, Soporte Acme (<support@help.acme.example>)\n"
        "escribió:\n\n"
        "> ¿Puede probar de nuevo?\n"
    )
    assert parts.new_text == "Sigue sin funcionar el informe mensual."
    assert "escribió:" in parts.quoted


def test_french_quote_header() -> None:
    parts = split_reply(
        "Bonjour,\n\nLe problème persiste depuis ce matin.\n\n"
        "Le lun. 3 mars 2025 à 10:15, Support Acme <support@help.acme.example> a écrit :\n"
        "> Pouvez-vous réessayer ?\n"
    )
    assert parts.new_text == "Bonjour,\n\nLe problème persiste depuis ce matin."
    assert parts.quoted.startswith("Le lun. 3 mars 2025")


def test_german_quote_header_with_name_after_the_verb() -> None:
    parts = split_reply(
        "Danke, jetzt geht es.\n\nAm 03.03.2025 um 10:15 schrieb Acme Support "
        "<support@help.acme.example>:\n> Bitte erneut versuchen.\n"
    )
    assert parts.new_text == "Danke, jetzt geht es."


@pytest.mark.parametrize(
    ("block", "label"),
    [
        (
            "________________________________\nFrom: Acme Support <support@help.acme.example>\n"
            "Sent: Monday, March 3, 2025 10:15 AM\nTo: Ana Gómez <ana@globex.example>\n"
            "Subject: RE: [Ticket #12] Dashboard down",
            "From:",
        ),
        (
            "De: Soporte Acme <support@help.acme.example>\nEnviado el: lunes, 3 de marzo de 2025"
            " 10:15\nPara: Ana Gómez <ana@globex.example>\nAsunto: RE: [Ticket #12] Sin panel",
            "De:",
        ),
        (
            "De : Support Acme <support@help.acme.example>\nEnvoyé : lundi 3 mars 2025 10:15\n"
            "À : Luc Martin <luc@initech.example>\nObjet : RE: [Ticket #12] Tableau de bord",
            "De :",
        ),
        (
            "-----Ursprüngliche Nachricht-----\nVon: Acme Support <support@help.acme.example>\n"
            "Gesendet: Montag, 3. März 2025 10:15\nAn: Jan Becker <jan@beispiel.example>\n"
            "Betreff: AW: [Ticket #12] Dashboard",
            "Von:",
        ),
    ],
)
def test_outlook_header_blocks(block: str, label: str) -> None:
    parts = split_reply(f"Here is the log you asked for.\n\n{block}\n\nOld message text.\n")
    assert parts.new_text == "Here is the log you asked for."
    assert label in parts.quoted
    assert parts.quoted.endswith("Old message text.")


@pytest.mark.parametrize(
    "marker",
    [
        "---------- Forwarded message ---------",
        "-------- Message transféré --------",
        "---------- Mensaje reenviado ----------",
        "Begin forwarded message:",
    ],
)
def test_forwarded_blocks_are_history(marker: str) -> None:
    parts = split_reply(f"FYI, see below.\n\n{marker}\nFrom: billing@acme.example\n\nInvoice 88\n")
    assert parts.new_text == "FYI, see below."
    assert parts.quoted.startswith(marker)


@pytest.mark.parametrize(
    ("body", "new_text", "signature"),
    [
        ("Adjunto el log.\n\n-- \nAna Gómez\nGlobex", "Adjunto el log.", "-- \nAna Gómez\nGlobex"),
        (
            "Adjunto el log.\n\nEnviado desde mi iPhone",
            "Adjunto el log.",
            "Enviado desde mi iPhone",
        ),
        ("Voici le log.\n\nEnvoyé de mon iPhone", "Voici le log.", "Envoyé de mon iPhone"),
        (
            "Voici le log.\n\nCordialement,\nLuc Martin\nInitech",
            "Voici le log.",
            "Cordialement,\nLuc Martin\nInitech",
        ),
        (
            "Attached.\n\nBest regards,\nAna\n+34 600 000 000",
            "Attached.",
            "Best regards,\nAna\n+34 600 000 000",
        ),
    ],
)
def test_signatures_are_kept_apart(body: str, new_text: str, signature: str) -> None:
    parts = split_reply(body)
    assert (parts.new_text, parts.signature) == (new_text, signature)
    assert parts.reply == f"{new_text}\n\n{signature}"


def test_signature_starting_with_the_senders_name() -> None:
    parts = split_reply("Works now.\n\nAna Gómez\nHead of IT, Globex", sender_name="Ana Gómez")
    assert (parts.new_text, parts.signature) == ("Works now.", "Ana Gómez\nHead of IT, Globex")


def test_no_false_positives_on_ordinary_text() -> None:
    body = (
        "On the other hand, the report is slow.\n"
        "On average it takes 40 seconds.\n"
        "The page https://example.com/on-monday-she-wrote:-hi shows it.\n"
        "The data comes From: our database.\n"
        "Thanks!"
    )
    parts = split_reply(body)
    assert (parts.new_text, parts.signature, parts.quoted) == (body, "", "")


def test_sign_off_words_inside_the_message_are_not_a_signature() -> None:
    body = "Thanks,\nthe export still fails with error E-1234 when I press save.\nAna"
    assert split_reply(body).signature == ""
    named = "Works now.\nAna will send the logs tomorrow."
    assert split_reply(named, sender_name="Ana Gómez").signature == ""


def test_interleaved_answers_are_new_text() -> None:
    parts = split_reply(
        "On Mon, Mar 3, 2025 at 10:15 AM Marta <marta@acme.example> wrote:\n"
        "> Which browser?\n\nFirefox 124.\n\n> Which version of the app?\n\n4.2.1\n"
    )
    assert parts.new_text == "Firefox 124.\n\n4.2.1"
    assert "> Which browser?" in parts.quoted


def test_line_endings_and_empty_bodies() -> None:
    parts = split_reply("Hola\r\n\r\nEl 3/3/25, Ana <ana@globex.example> escribió:\r\n> x\r\n")
    assert parts.new_text == "Hola"
    assert split_reply("") == split_reply("\n\n")
    assert split_reply("").reply == ""


CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"


@pytest.mark.skipif(not (CORPORA / "talon").is_dir(), reason="shared corpora not present")
def test_talon_standard_replies_in_place() -> None:
    expected = json.loads((CORPORA / "talon/_expected.json").read_text())["standard_replies"]
    for name, case in expected.items():
        raw = (CORPORA / "talon/standard_replies" / name).read_bytes()
        body = parse_message(raw, IntakeLimits()).body_text
        got = [line.rstrip() for line in split_reply(body).reply.split("\n")]
        assert got == [line.rstrip() for line in case["expected_reply_text"].split("\n")], name


@pytest.mark.parametrize("unit", ["ab\n", "1\n", "a 1:\n", "From: a\n", ">\nb\n", "x\n\n"])
def test_quote_split_is_linear_in_the_number_of_lines(unit: str) -> None:
    started = time.perf_counter()
    split_reply(unit * 100_000)  # quadratic: about 10-40 s; linear: well under a second
    assert time.perf_counter() - started < 5
