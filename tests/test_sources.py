"""Reading mail from files: an mbox only when it really is one, else one message kept whole."""

from __future__ import annotations

from pathlib import Path

from mailproc.core.limits import IntakeLimits
from mailproc.core.parse import parse_message
from mailproc.intake.sources import read_path

SINGLE = (
    b"From ana@globex.example Mon Dec  1 10:00:00 2026\n"
    b"From: Ana <ana@globex.example>\nTo: support@dataflow.com\nSubject: sync fails\n"
    b"Message-ID: <single@globex.example>\n\n"
    b"Our sync fails.\n\nFrom the logs:\nError: DS-1001 at 10:02\nsince Monday\n\n"
    b"From ana@globex.example Mon Dec  1 10:00:00 2026\nthat line is text too\n"
)
SECOND = (
    b"From bo@initech.example Tue Dec  2 09:00:00 2026\n"
    b"From: bo@initech.example\nSubject: second\nMessage-ID: <second@initech.example>\n\nHi\n"
)


def test_a_single_message_with_from_lines_in_its_body_is_one_message_kept_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mail.eml"
    path.write_bytes(SINGLE)
    [item] = list(read_path(path))
    assert item.error is None
    assert item.raw == SINGLE
    assert item.envelope.source == "file" and item.envelope.mail_from == "ana@globex.example"
    parsed = parse_message(item.raw, IntakeLimits())
    assert parsed.subject == "sync fails" and parsed.sender is not None
    assert "From the logs:" in parsed.body_text and "that line is text too" in parsed.body_text
    assert not any("skipped" in d for d in parsed.defects)


def test_several_separators_with_header_blocks_make_an_mbox(tmp_path: Path) -> None:
    path = tmp_path / "mail"
    path.write_bytes(SINGLE + b"\n" + SECOND)
    items = list(read_path(path))
    assert [i.envelope.source_ref for i in items] == [f"{path}#0", f"{path}#1"]
    assert [i.envelope.mail_from for i in items] == ["ana@globex.example", "bo@initech.example"]
    assert items[0].raw == SINGLE.partition(b"\n")[2]  # the body's From lines stay in it
    assert items[1].raw == SECOND.partition(b"\n")[2]


def test_a_file_named_mbox_is_an_mbox_even_with_one_message(tmp_path: Path) -> None:
    path = tmp_path / "archive.mbox"
    path.write_bytes(SINGLE)
    [item] = list(read_path(path))
    assert item.envelope.source == "mbox" and item.raw == SINGLE.partition(b"\n")[2]


def test_a_junk_line_above_the_headers_is_stored_and_skipped_with_a_defect(
    tmp_path: Path,
) -> None:
    raw = (
        b"---- Original email message ----\r\nFrom: Ana <ana@globex.example>\r\n"
        b"Subject: dashboards down\r\n\r\nHelp\r\n"
    )
    path = tmp_path / "junk.eml"
    path.write_bytes(raw)
    [item] = list(read_path(path))
    assert item.error is None and item.raw == raw
    parsed = parse_message(item.raw, IntakeLimits())
    assert parsed.sender is not None and parsed.sender.addr == "ana@globex.example"
    assert parsed.subject == "dashboards down" and parsed.body_text == "Help"
    assert "1 line(s) before the header block skipped" in parsed.defects


def test_text_above_quoted_headers_is_still_not_mail(tmp_path: Path) -> None:
    path = tmp_path / "reply.txt"
    path.write_bytes(b"And another reply!\n\nFrom: Dan <d@x.example>\nSubject: Re: x\n\nA\n")
    [item] = list(read_path(path))
    assert item.error == "input does not start with a mail header line (Name: value)"
