"""The understanding budget: very long bodies are processed in reduced form, never stalled."""

from __future__ import annotations

import time

from mailproc.core.catalog import load_default_catalog
from mailproc.core.classify import classifier_from_config
from mailproc.core.detect import DetectPolicy
from mailproc.core.limits import IntakeLimits
from mailproc.core.understand import PrepareRules, prepare

RULES = PrepareRules(IntakeLimits(), DetectPolicy(), classifier_from_config(load_default_catalog()))


def mail(body: str) -> bytes:
    head = "From: Ana <ana@example.com>\r\nTo: support@dataflow.com\r\nSubject: DS-1001 down\r\n"
    return (head + "\r\n" + body).encode()


def test_a_body_over_the_budget_is_ticketed_without_a_quote_split() -> None:
    body = "Our sync fails with DS-1001.\r\n" + "ok\r\n" * 500_000  # 2 MB, 500,000 lines
    started = time.perf_counter()
    prepared = prepare(mail(body), RULES, None)
    assert time.perf_counter() - started < 20
    assert prepared.reduced
    assert prepared.quoted_text == ""
    assert prepared.new_text == prepared.parsed.body_text
    assert prepared.read_text == prepared.parsed.body_text[:262144]  # what later steps read
    assert prepared.classification is not None
    assert "DS-1001" in prepared.classification.error_codes
    assert any("over the understanding budget of 262144" in d for d in prepared.parsed.defects)


def test_a_body_within_the_budget_is_split_as_usual() -> None:
    body = "New text here.\r\n\r\nOn Mon, 1 Jan 2024, Bo <bo@x.example> wrote:\r\n> old\r\n"
    prepared = prepare(mail(body), RULES, None)
    assert not prepared.reduced
    assert prepared.new_text == "New text here."
    assert prepared.read_text == prepared.new_text
    assert "> old" in prepared.quoted_text
    assert not any("budget" in d for d in prepared.parsed.defects)


def test_budget_is_configurable() -> None:
    rules = PrepareRules(IntakeLimits(max_understood_chars=1024), RULES.detection, RULES.classifier)
    assert prepare(mail("x\r\n" * 1000), rules, None).reduced
