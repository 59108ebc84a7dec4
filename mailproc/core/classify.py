"""Priority (P0-P3) and intent classification of a support mail by ordered, named, data rules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from operator import itemgetter
from typing import Any

from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt, ValidationError

from mailproc.core.catalog import Catalog, CodeMatches, ErrorCode
from mailproc.core.classify_rules import DEFAULT_RULES
from mailproc.core.model import Priority


class Intent(StrEnum):
    """What the customer wants, independent of urgency."""

    TECHNICAL_ISSUE = "technical_issue"
    OUTAGE = "outage"
    REFUND_CANCELLATION = "refund_cancellation"
    FEATURE_REQUEST = "feature_request"
    BILLING_QUESTION = "billing_question"
    SURVEY_ANSWER = "survey_answer"
    SECURITY = "security"  # account compromise, unknown logins, data exposure
    OTHER = "other"


class ClassifyError(ValueError):
    """Classification rules or settings (defaults or config) are malformed."""


_SEVERITY = {priority: rank for rank, priority in enumerate(Priority)}  # P0 is rank 0
_TECHNICAL = frozenset({Intent.TECHNICAL_ISSUE, Intent.OUTAGE})
_APOSTROPHES = re.compile("[’‘ʼ´]")
_COMBINING_MARKS = re.compile("[\u0300-\u036f]")
_PATTERN_LETTERS = re.compile(r"\\.|[^\\]+", re.DOTALL)
# An HTTP status is a 4xx/5xx number next to a word saying so ("error 503", "503 bad gateway").
# The number is found first (its first character is rare, so the scan is fast); the lookbehind
# placed after the digits checks that no word character or dot comes before the number.
_STATUS_NUMBER = re.compile(r"[45]\d\d(?<![\w.]...)(?!\w)")
_STATUS_BEFORE = re.compile(
    r"(?<!\w)(?:http(?:/\d(?:\.\d)?)?|error|erreur|status|statut|estado|code|codigo)"
    r"(?: code| de estado| http)?:? ?$"
)
_STATUS_AFTER = re.compile(
    r":? (?:error|erreur|service unavailable|service indisponible|servicio no disponible"
    r"|bad gateway|gateway time-?out|internal server error|too many requests)(?!\w)"
)
_SNIPPET = 80
MAX_TEXT_CHARS = 10_000  # rules read this much of the new text; the signal is at the top


def fold_text(text: str) -> str:
    """Lower-case ``text``, drop accents, unify apostrophes and collapse white space.

    Rule patterns are matched against this form, so ``caídos`` and ``caidos`` match alike.
    """
    if not text.isascii():
        text = _COMBINING_MARKS.sub("", unicodedata.normalize("NFKD", _APOSTROPHES.sub("'", text)))
    return " ".join(text.split()).lower()


class _RuleData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    priority: Priority | None = None
    intent: Intent | None = None
    triage: str | None = None
    patterns: list[str] = []
    codes: list[str] = []
    http: list[int] = []
    catalog: bool = False
    enabled: bool = True


class _ClassifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[dict[str, Any]] = []
    replace_default_rules: bool = False
    default_priority: Priority = Priority.P3
    unmatched_technical_priority: Priority = Priority.P2
    conflict_spread: PositiveInt = 2
    triage_within_minutes: PositiveFloat = 30


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that fired: what it proposes and why."""

    rule: str
    priority: Priority | None
    intent: Intent | None
    reason: str
    triage: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule; it fires when any of its conditions holds."""

    name: str
    priority: Priority | None
    intent: Intent | None
    triage: str | None
    pattern: re.Pattern[str] | None
    codes: frozenset[str]
    http: frozenset[int]
    catalog: bool

    def hits(self, folded: str, codes: CodeMatches, statuses: tuple[int, ...]) -> list[RuleHit]:
        """The hits of this rule on folded text with the codes and HTTP statuses found in it."""
        if self.catalog:
            return [self._catalog_hit(code) for code in codes.known]
        reasons: list[str] = []
        match = self.pattern.search(folded) if self.pattern is not None else None
        if match is not None:
            reasons.append(f'text matched "{match.group(0)[:_SNIPPET]}"')
        found = (*(code.code for code in codes.known), *codes.unknown)
        named = [code for code in found if code in self.codes]
        if named:
            reasons.append(f"error code {', '.join(named)}")
        http = [str(status) for status in statuses if status in self.http]
        if http:
            reasons.append(f"HTTP {', '.join(http)} in text")
        if not reasons:
            return []
        return [RuleHit(self.name, self.priority, self.intent, "; ".join(reasons), self.triage)]

    def _catalog_hit(self, code: ErrorCode) -> RuleHit:
        # A P0 code is by definition a critical outage (§2.1).
        intent = Intent.OUTAGE if code.priority is Priority.P0 else self.intent
        reason = (
            f"error code {code.code} ({code.title('en')}): catalog priority {code.priority},"
            f" escalation team {code.team}"
        )
        return RuleHit(self.name, code.priority, intent, reason, self.triage)


@dataclass(frozen=True, slots=True)
class Classification:
    """The outcome for one mail; ``priority_rule`` is None when the default priority applied."""

    priority: Priority
    intent: Intent
    rule_hits: tuple[RuleHit, ...]
    error_codes: tuple[str, ...]
    unknown_codes: tuple[str, ...]
    http_statuses: tuple[int, ...]
    priority_rule: str | None
    needs_triage: bool
    triage_reason: str | None
    triage_within: dt.timedelta | None  # Support Manager escalation due this long after receipt

    def flagged(self, reason: str, within: dt.timedelta) -> Classification:
        """The same outcome, also flagged for triage for ``reason``."""
        reasons = "; ".join(r for r in (self.triage_reason, reason) if r)
        return dataclasses.replace(
            self,
            needs_triage=True,
            triage_reason=reasons,
            triage_within=self.triage_within or within,
        )


@dataclass(frozen=True, slots=True)
class Classifier:
    """Rules, catalog and settings; build once, then classify every inbound mail."""

    catalog: Catalog
    rules: tuple[Rule, ...]
    default_priority: Priority = Priority.P3
    unmatched_technical_priority: Priority = Priority.P2
    conflict_spread: int = 2
    triage_within: dt.timedelta = dt.timedelta(minutes=30)

    def classify(self, subject: str, new_text: str) -> Classification:
        """Classify a mail from its subject and new text (quotes.split_reply removes history)."""
        text = f"{subject}\n{new_text[:MAX_TEXT_CHARS]}"
        matches = self.catalog.find_codes(text)
        folded = fold_text(text)
        statuses = _http_statuses(folded)
        hits = tuple(hit for rule in self.rules for hit in rule.hits(folded, matches, statuses))
        intent = next((hit.intent for hit in hits if hit.intent is not None), Intent.OTHER)
        triage = list(dict.fromkeys(hit.triage for hit in hits if hit.triage))
        proposals = [
            (_SEVERITY[hit.priority], hit.priority, hit.rule)
            for hit in hits
            if hit.priority is not None
        ]
        if proposals:
            _, priority, priority_rule = min(proposals, key=itemgetter(0))
            rank, weakest, weakest_rule = max(proposals, key=itemgetter(0))
            if rank - _SEVERITY[priority] >= self.conflict_spread:
                triage.append(
                    f"conflicting signals: {priority_rule} says {priority},"
                    f" {weakest_rule} says {weakest}"
                )
        elif intent in _TECHNICAL:
            priority, priority_rule = self.unmatched_technical_priority, None
            unknown = f" (unknown codes: {', '.join(matches.unknown)})" if matches.unknown else ""
            triage.append(f"technical mail matched no priority rule{unknown}")
        else:
            priority, priority_rule = self.default_priority, None
        return Classification(
            priority=priority,
            intent=intent,
            rule_hits=hits,
            error_codes=tuple(code.code for code in matches.known),
            unknown_codes=matches.unknown,
            http_statuses=statuses,
            priority_rule=priority_rule,
            needs_triage=bool(triage),
            triage_reason="; ".join(triage) or None,
            triage_within=self.triage_within if triage else None,
        )


def build_rules(
    overrides: Sequence[Mapping[str, Any]] = (),
    base: Sequence[Mapping[str, Any]] = DEFAULT_RULES,
) -> tuple[Rule, ...]:
    """Compile ``base`` rules with ``overrides`` applied.

    An override whose ``name`` matches a base rule replaces the fields it gives, in place;
    ``enabled = false`` removes the rule; any other override is appended.
    """
    merged: dict[str, dict[str, Any]] = {}
    for data in (*base, *overrides):
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ClassifyError(f"classification rule without a name: {dict(data)!r}")
        merged[name] = {**merged.get(name, {}), **data}
    rules = (_compile(data) for data in merged.values())
    return tuple(rule for rule in rules if rule is not None)


def classifier_from_config(catalog: Catalog, config: Mapping[str, Any] | None = None) -> Classifier:
    """A classifier from the ``[classify]`` config table (None: all defaults)."""
    try:
        settings = _ClassifyConfig.model_validate(config or {})
    except ValidationError as exc:
        raise ClassifyError(f"classify settings: {exc}") from exc
    base = () if settings.replace_default_rules else DEFAULT_RULES
    return Classifier(
        catalog=catalog,
        rules=build_rules(settings.rules, base),
        default_priority=settings.default_priority,
        unmatched_technical_priority=settings.unmatched_technical_priority,
        conflict_spread=settings.conflict_spread,
        triage_within=dt.timedelta(minutes=settings.triage_within_minutes),
    )


def _http_statuses(folded: str) -> tuple[int, ...]:
    found: dict[int, None] = {}
    for match in _STATUS_NUMBER.finditer(folded):
        start, end = match.span()
        if _STATUS_BEFORE.search(folded, max(0, start - 30), start) or _STATUS_AFTER.match(
            folded, end
        ):
            found[int(match[0])] = None
    return tuple(found)


def _compile(raw: Mapping[str, Any]) -> Rule | None:
    try:
        data = _RuleData.model_validate(raw)
    except ValidationError as exc:
        raise ClassifyError(f"classification rule {raw.get('name')!r}: {exc}") from exc
    if not data.enabled:
        return None
    if not (data.patterns or data.codes or data.http or data.catalog):
        raise ClassifyError(f"classification rule {data.name!r} has no condition")
    if data.catalog and (data.patterns or data.codes or data.http or data.priority):
        raise ClassifyError(f"catalog rule {data.name!r} takes its priority from the catalog only")
    if data.priority is None and data.intent is None and data.triage is None:
        raise ClassifyError(f"classification rule {data.name!r} has no effect")
    return Rule(
        name=data.name,
        priority=data.priority,
        intent=data.intent,
        triage=data.triage,
        pattern=_pattern(data.name, data.patterns),
        codes=frozenset(code.upper() for code in data.codes),
        http=frozenset(data.http),
        catalog=data.catalog,
    )


def _pattern(name: str, patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    folded = "|".join(f"(?:{_fold_pattern(pattern)})" for pattern in patterns)
    try:
        return re.compile(rf"(?<!\w)(?:{folded})(?!\w)")
    except re.error as exc:
        raise ClassifyError(f"classification rule {name!r}: bad pattern: {exc}") from exc


def _fold_pattern(pattern: str) -> str:
    """Fold a pattern like the text (accents off, lower case) but leave escapes such as \\W."""
    plain = _COMBINING_MARKS.sub("", unicodedata.normalize("NFKD", pattern))
    return _PATTERN_LETTERS.sub(lambda m: m[0] if m[0].startswith("\\") else m[0].lower(), plain)
