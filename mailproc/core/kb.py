"""Knowledge base (§9): article states, the ``#kb`` command, recurring issues and deflection.

An article is keyed by an error code (``API-4004``) or, for mail without a code, by the
classification rule that decided its priority (``rule:billing``). Each change is a revision:
``draft → in_review → published → retired``; at most one revision of a key is open (draft or in
review) and one is published. Security topics stay internal (§9 edge case).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from mailproc.core.identity import AgentRole


class ArticleStatus(StrEnum):
    """Where a revision is in its life."""

    DRAFT = "draft"  # written, or sent back by a reviewer
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    RETIRED = "retired"  # replaced by a later published revision


OPEN_STATUSES = (ArticleStatus.DRAFT, ArticleStatus.IN_REVIEW)


class Visibility(StrEnum):
    """Who may read an article: customers too, or staff only."""

    PUBLIC = "public"
    INTERNAL = "internal"


class KbAction(StrEnum):
    """What a ``#kb`` command does."""

    DRAFT = "draft"
    UPDATE = "update"
    PUBLISH = "publish"
    REJECT = "reject"


KB_USAGE = (
    "#kb draft CODE [en|es|fr] [public|internal] | #kb update [CODE] [en|es|fr] "
    "| #kb publish [CODE] | #kb reject [CODE] REASON"
)
# Who may publish or reject (§9.1: managers review and publish); anyone on staff may draft.
REVIEWER_ROLES = frozenset({AgentRole.SUPPORT_MANAGER, AgentRole.SUPPORT_DIRECTOR})
LOCALES = ("en", "es", "fr")
SEED_AUTHOR = "catalog"  # the shipped error-code catalog: published, never reviewed
_KEY = re.compile(r"(?:[A-Za-z]{2,5}-[0-9]{4,5}|rule:[a-z0-9_.-]{1,48})", re.IGNORECASE)
_SUBJECT_TAG = re.compile(r"\[KB ([^\]\s]+)\]")
_MARKER = re.compile(r"^\s*(?:[0-9]{1,2}[.)]|[-*•])\s+")
_SECURITY = re.compile(r"secur|breach|vulnerab|phish", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class KbCommand:
    """A parsed ``#kb`` line; ``key`` None means the key of the mail's subject tag."""

    source: str
    action: KbAction
    key: str | None = None
    locale: str = "en"
    visibility: Visibility | None = None
    reason: str = ""


def normalize_key(key: str) -> str:
    """Codes in upper case, rule keys in lower case."""
    return key.lower() if key.lower().startswith("rule:") else key.upper()


def parse_kb(source: str, argument: str) -> KbCommand | str:
    """Parse the argument of ``#kb``; a string is the problem found."""
    words = argument.split()
    try:
        action = KbAction(words[0].lower()) if words else None
    except ValueError:
        action = None
    if action is None:
        return f"#kb takes draft, update, publish or reject, not {argument!r}"
    rest = words[1:]
    key = normalize_key(rest.pop(0)) if rest and _KEY.fullmatch(rest[0]) else None
    if action is KbAction.DRAFT and key is None:
        return "#kb draft needs an error code (or rule:NAME)"
    if action is KbAction.REJECT:
        if not rest:
            return "#kb reject needs a reason"
        return KbCommand(source, action, key, reason=" ".join(rest))
    locale, visibility = "en", None
    for word in rest:
        if word.lower() in LOCALES and action in (KbAction.DRAFT, KbAction.UPDATE):
            locale = word.lower()
        elif word.lower() in tuple(Visibility) and action is KbAction.DRAFT:
            visibility = Visibility(word.lower())
        else:
            return f"unexpected {word!r} after #kb {action}"
    return KbCommand(source, action, key, locale, visibility)


def subject_key(subject: str) -> str | None:
    """The article key of a review mail's subject tag (``[KB API-4004]``), if any."""
    found = _SUBJECT_TAG.search(subject)
    return normalize_key(found[1]) if found and _KEY.fullmatch(found[1]) else None


def subject_tag(key: str) -> str:
    """The tag that review mail subjects carry, so a reply names its article."""
    return f"[KB {key}]"


def default_visibility(topic: str) -> Visibility:
    """Internal for security topics (§9 edge case), public otherwise."""
    return Visibility.INTERNAL if _SECURITY.search(topic) else Visibility.PUBLIC


def steps_from_text(text: str) -> tuple[str, ...]:
    """An agent's resolution text as steps: one per non-blank line, list markers removed."""
    steps = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip() or line.lstrip().startswith(">"):
            continue
        steps.append(_MARKER.sub("", line).strip())
    return tuple(step for step in steps if step)


def issue_keys(classification: Mapping[str, object]) -> tuple[str, ...]:
    """The article keys a ticket counts for: its error codes, else its deciding rule."""
    codes = classification.get("error_codes")
    if isinstance(codes, list) and codes:
        return tuple(normalize_key(str(code)) for code in codes)
    rule = classification.get("priority_rule")
    return (f"rule:{rule}".lower(),) if isinstance(rule, str) and rule else ()


def month_of(moment: dt.datetime) -> str:
    """The calendar month (UTC) as ``YYYY-MM``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m")


def month_start(moment: dt.datetime) -> dt.datetime:
    """Midnight UTC on the first day of ``moment``'s month."""
    utc = moment.astimezone(dt.UTC)
    return dt.datetime(utc.year, utc.month, 1, tzinfo=dt.UTC)


def next_month_start(moment: dt.datetime) -> dt.datetime:
    """Midnight UTC on the first day of the month after ``moment``'s."""
    start = month_start(moment)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


@dataclass(frozen=True, slots=True)
class RecurringIssue:
    """A key with more tickets this month than the threshold and no fresh reviewed article."""

    key: str
    month: str
    count: int
    last_reviewed: dt.datetime | None


def recurring_issues(
    counts: Mapping[str, int],
    last_reviewed: Mapping[str, dt.datetime],
    now: dt.datetime,
    threshold: int,
    fresh: dt.timedelta,
) -> list[RecurringIssue]:
    """The keys past ``threshold`` (§9.2.1: more than 10 a month) without a fresh article."""
    found = []
    for key, count in sorted(counts.items()):
        reviewed = last_reviewed.get(key)
        if count > threshold and (reviewed is None or now - reviewed > fresh):
            found.append(RecurringIssue(key, month_of(now), count, reviewed))
    return found


@dataclass(frozen=True, slots=True)
class Deflection:
    """Tickets per 30 days before and after an article was published or updated."""

    key: str
    changed_at: dt.datetime
    before: int
    after: float  # per 30 days of the time elapsed since the change (up to the window)

    @property
    def reduction(self) -> float | None:
        """The share of tickets deflected (0.2 = 20% fewer), None without a before count."""
        return None if self.before == 0 else 1 - self.after / self.before


def deflection(
    key: str,
    changed_at: dt.datetime,
    received: Iterable[dt.datetime],
    now: dt.datetime,
    window: dt.timedelta = dt.timedelta(days=30),
) -> Deflection:
    """Compare the key's tickets in the window before the change with those after it."""
    times = list(received)
    before = sum(1 for t in times if changed_at - window <= t < changed_at)
    end = min(now, changed_at + window)
    after = sum(1 for t in times if changed_at <= t < end)
    elapsed = max(end - changed_at, dt.timedelta(days=1))
    return Deflection(key, changed_at, before, round(after * window / elapsed, 1))
