"""Measure detection and quote stripping against the shared real-world corpora.

Usage: python scripts/corpus_detect_check.py [CORPORA_DIR]   (default: ../shared/corpora)

Prints bounce detection and failed-recipient accuracy (flufl-bounce), the labelled alaveteli
cases, reply-text accuracy (talon, crisp-email-reply-parser), every mail in every corpus that
is classified as a bounce or an auto-reply (for a human to check), and throughput. Exits 1
when a bar is missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from operator import attrgetter
from pathlib import Path

from mailproc.core.addresses import normalize_address
from mailproc.core.detect import Detection, DetectPolicy, MailKind, detect
from mailproc.core.limits import IntakeLimits
from mailproc.core.model import ParsedMessage
from mailproc.core.parse import html_to_text, parse_message
from mailproc.core.quotes import ReplyParts, split_reply
from mailproc.core.rawmail import strip_mbox_from_line
from mailproc.core.tokens import ReplyAddressScheme

BOUNCE_BAR = 0.95
REPLY_TEXT_BAR = 0.90
# Folders holding reply bodies only (not whole messages); talon keeps whole mails as *.eml.
BODY_ONLY = {"crisp-email-reply-parser", "zapier-email-reply-parser", "mail-parser-reply"}
# Files whose kind a person checked by reading them, where it differs from the folder default
# (flufl-bounce: bounce; every other folder: human). Anything automatic not listed here fails.
REVIEWED: dict[str, MailKind] = {
    "flufl-bounce/groupwise_03.txt": MailKind.HUMAN,  # a hotel's reply; a detector negative
    "flufl-bounce/qmail_08.txt": MailKind.AUTO_REPLY,  # "Auto reply", Precedence: auto_reply
    "alaveteli/autoresponse-header.eml": MailKind.BOUNCE,  # an Exim bounce despite its name
    "alaveteli/empty-return-path.eml": MailKind.BOUNCE,
    "alaveteli/humberside-police-odd-mime-type.eml": MailKind.BOUNCE,
    "alaveteli/utf-7-conversion.eml": MailKind.BOUNCE,
    "alaveteli/track-response-exim-bounce.eml": MailKind.BOUNCE,
    "alaveteli/track-response-webshield-bounce.eml": MailKind.BOUNCE,
    "alaveteli/track-response-ms-bounce.eml": MailKind.BOUNCE,
    "alaveteli/track-response-multipart-report.eml": MailKind.BOUNCE,
    "alaveteli/track-response-generic-oof.eml": MailKind.AUTO_REPLY,
    "alaveteli/track-response-exchange-oof-1.eml": MailKind.AUTO_REPLY,
    "alaveteli/track-response-lotus-oof-1.eml": MailKind.AUTO_REPLY,
    "alaveteli/track-response-messagelabs-oof-1.eml": MailKind.AUTO_REPLY,
    "alaveteli/track-response-messageclass-oof.eml": MailKind.AUTO_REPLY,
    "alaveteli/track-response-outlook-oof.eml": MailKind.AUTO_REPLY,
    "alaveteli/track-response-abcmail-oof.eml": MailKind.AUTO_REPLY,
    "mikel-mail/multipart_report_emails/multi_address_bounce1.eml": MailKind.BOUNCE,
    "mikel-mail/multipart_report_emails/multi_address_bounce2.eml": MailKind.BOUNCE,
    "mikel-mail/multipart_report_emails/multipart_report_multiple_status.eml": MailKind.BOUNCE,
    "mikel-mail/multipart_report_emails/report_422.eml": MailKind.BOUNCE,
    "mikel-mail/multipart_report_emails/report_530.eml": MailKind.BOUNCE,
    "cpython-test_email/msg_05.txt": MailKind.BOUNCE,  # a skeleton multipart/report DSN
    "cpython-test_email/msg_16.txt": MailKind.BOUNCE,
    "cpython-test_email/msg_25.txt": MailKind.BOUNCE,
    "cpython-test_email/msg_42.txt": MailKind.BOUNCE,  # a skeleton mailer bounce
    "cpython-test_email/msg_43.txt": MailKind.BOUNCE,  # a virus-filter DSN
    "mikel-mail/mime_emails/raw_email_with_mimepart_without_content_type.eml": MailKind.BOUNCE,
}
AUTOMATIC = (MailKind.BOUNCE, MailKind.AUTO_REPLY)
POLICY = DetectPolicy(
    own_addresses=frozenset({"support@mailproc.test"}),
    message_id_domains=frozenset({"mail.mailproc.test"}),
    reply_scheme=ReplyAddressScheme("support", "mailproc.test", (b"corpus-check-secret-0001",)),
)
LIMITS = IntakeLimits()


def load(path: Path) -> ParsedMessage:
    """Parse one stored mail the way intake does (mbox ``From`` line removed)."""
    raw, _ = strip_mbox_from_line(path.read_bytes())
    return parse_message(raw, LIMITS)


def mail_files(root: Path) -> Iterator[Path]:
    """Every whole message in the corpora, in a stable order."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in BODY_ONLY):
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.name.startswith("_") or path.name == "README.md":
                continue
            if folder.name == "talon" and path.suffix != ".eml":
                continue
            yield path


def ratio(good: int, total: int) -> str:
    return f"{good}/{total} ({100 * good / total:.1f}%)" if total else "0/0"


def check_flufl(root: Path) -> bool:
    """Bounces from many MTAs: detected, with the expected failed recipients."""
    cases = json.loads((root / "flufl-bounce/_expected_detectors.json").read_text())["cases"]
    good = total = 0
    print("== flufl-bounce: bounce detected with the expected failed recipients")
    for case in cases:
        detection = detect(load(root / "flufl-bounce" / case["file"]), POLICY)
        temporary = case["temporary_failure"]
        got = {
            f.address
            for f in (detection.bounce.failed if detection.bounce else ())
            if f.permanent != temporary
        }
        expected = {normalize_address(a) for a in case["expected_addresses"]}
        if not expected:  # a detector-specific negative: listed for review, not scored
            print(f"   (negative) {case['file']}: {detection.kind} {sorted(got)}")
            continue
        total += 1
        if detection.kind is MailKind.BOUNCE and got == expected:
            good += 1
        else:
            print(f"   MISS {case['file']}: {detection.kind} got {sorted(got)} want {expected}")
    print(f"   detected with the right recipients: {ratio(good, total)} (bar {BOUNCE_BAR:.0%})")
    return total > 0 and good / total >= BOUNCE_BAR


def check_alaveteli(root: Path) -> bool:
    """Every labelled out-of-office, bounce and normal mail must be right."""
    labels = json.loads((root / "alaveteli/_expected_handle_mail_replies.json").read_text())
    wanted = {"bounce": MailKind.BOUNCE, "out-of-office": MailKind.AUTO_REPLY}
    good = 0
    print("== alaveteli: labelled out-of-office / bounce / normal")
    for name, label in labels["files"].items():
        detection = detect(load(root / "alaveteli" / name), POLICY)
        kind = wanted.get(label["kind"], MailKind.HUMAN)
        ok = detection.kind is kind
        if kind is MailKind.BOUNCE:
            expected = label.get("permanent_failed_recipient")
            permanent = set(detection.bounce.permanent) if detection.bounce else set()
            ok = ok and permanent == ({normalize_address(expected)} if expected else set())
        good += ok
        print(f"   {'ok  ' if ok else 'MISS'} {name}: want {label['kind']}, got {detection.kind}")
    print(f"   right: {ratio(good, len(labels['files']))} (bar: all)")
    return good == len(labels["files"])


def same_lines(a: str, b: str) -> bool:
    """Equal after trimming, ignoring trailing spaces on each line (invisible in a reply)."""
    return [x.rstrip() for x in a.strip().split("\n")] == [
        x.rstrip() for x in b.strip().split("\n")
    ]


def same_words(a: str, b: str) -> bool:
    """Equal ignoring all whitespace differences (HTML rendering varies)."""
    return a.split() == b.split()


ReplyCase = tuple[
    str, str, str | None, Callable[[ReplyParts], str], Callable[[str, str], bool], str
]


def reply_cases(root: Path) -> Iterator[ReplyCase]:
    """(set, body, sender, part to compare, comparison, expected) for talon and crisp cases."""
    talon = json.loads((root / "talon/_expected.json").read_text())
    reply, signature, new_text = (attrgetter(f) for f in ("reply", "signature", "new_text"))
    for name, case in talon["standard_replies"].items():
        body = load(root / "talon/standard_replies" / name).body_text
        yield "talon standard", body, None, reply, same_lines, case["expected_reply_text"]
    for name, case in talon["html_replies"].items():
        body = html_to_text((root / "talon/html_replies" / name).read_text(errors="replace"))
        yield "talon html", body, None, reply, same_words, case["expected_reply_text"]
    folder = root / "talon/signature/emails/stripped"
    for name, case in talon["signature_stripped"].items():
        sender = (folder / case["sender_file"]).read_text().strip()
        want = (folder / case["expected_signature_file"]).read_text()
        yield "talon signature", (folder / name).read_text(), sender, signature, same_lines, want
    crisp = json.loads((root / "crisp-email-reply-parser/_expected_from_tests.json").read_text())
    keys = ("expected_first_fragment", "expected_first_fragment_trimmed")
    for name, case in crisp["files"].items():
        body = (root / "crisp-email-reply-parser" / name).read_text()
        want = next((case[k] for k in (*keys, "expected_visible_text_trimmed") if k in case), None)
        if want is None and case.get("expected_fragment_count") == 1:
            want = body  # nothing to strip: the whole body is new text
        if want is not None:
            yield "crisp", body, None, new_text, same_lines, want


def check_replies(root: Path) -> bool:
    """Reply text after stripping quotes and signatures, per expectation set."""
    scores: dict[str, list[int]] = {}
    for group, body, sender, part, same, want in reply_cases(root):
        score = scores.setdefault(group, [0, 0])
        score[0] += same(part(split_reply(body, sender)), want)
        score[1] += 1
    good = sum(s[0] for s in scores.values())
    total = sum(s[1] for s in scores.values())
    print("== reply text (quotes and signature stripped)")
    for group, (ok, count) in scores.items():
        print(f"   {group}: {ratio(ok, count)}")
    print(f"   all: {ratio(good, total)} (bar {REPLY_TEXT_BAR:.0%})")
    return total > 0 and good / total >= REPLY_TEXT_BAR


def check_all_mail(root: Path) -> bool:
    """Classify every mail; list the automatic ones; no reviewed-human mail may be automatic."""
    ok = True
    counts: dict[MailKind, int] = {}
    parse_seconds = detect_seconds = quote_seconds = 0.0
    listed: list[tuple[str, Detection, ParsedMessage]] = []
    files = list(mail_files(root))
    for path in files:
        name = str(path.relative_to(root))
        start = time.perf_counter()
        try:
            message = load(path)
        except Exception as exc:  # reported, never fatal: intake would quarantine it
            print(f"   PARSE ERROR {name}: {type(exc).__name__}: {exc}")
            continue
        parsed = time.perf_counter()
        detection = detect(message, POLICY)
        detected = time.perf_counter()
        split_reply(message.body_text)
        parse_seconds += parsed - start
        detect_seconds += detected - parsed
        quote_seconds += time.perf_counter() - detected
        counts[detection.kind] = counts.get(detection.kind, 0) + 1
        default = MailKind.BOUNCE if name.startswith("flufl-bounce/") else MailKind.HUMAN
        truth = REVIEWED.get(name, default)
        if detection.kind in AUTOMATIC:
            listed.append((name, detection, message))
            if truth is MailKind.HUMAN:
                ok = False
                print(f"   HUMAN MAIL MISCLASSIFIED {name}: {detection.kind}")
        elif truth in AUTOMATIC and detection.kind is MailKind.HUMAN:
            ok = False
            print(f"   AUTOMATIC MAIL TAKEN AS HUMAN {name} (reviewed: {truth})")
    print(
        f"== all corpora: {len(files)} mails: " + ", ".join(f"{k}={v}" for k, v in counts.items())
    )
    print(f"   classified as bounce or auto-reply: {len(listed)} (check none is a person's mail)")
    for name, detection, message in listed:
        sender = message.sender.addr if message.sender else "-"
        print(f"   {detection.kind:10} {name} | From {sender[:40]} | {message.subject[:50]!r}")
        print(f"   {'':10} because: {'; '.join(detection.reasons)[:150]}")
    print(
        f"   throughput: parse {len(files) / parse_seconds:.0f} mails/s, detect "
        f"{len(files) / detect_seconds:.0f} mails/s, quote split {len(files) / quote_seconds:.0f}"
        " mails/s"
    )
    return ok


def main() -> int:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", nargs="?", type=Path, default=default)
    root = parser.parse_args().corpora
    # flufl.bounce logs a traceback whenever one of its detectors trips on malformed mail;
    # detect() falls back on its own, so keep this report readable.
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
    if not root.is_dir():
        print(f"corpora folder not found: {root}", file=sys.stderr)
        return 2
    results = [check_flufl(root), check_alaveteli(root), check_replies(root), check_all_mail(root)]
    print("RESULT:", "all bars met" if all(results) else "BARS MISSED")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
