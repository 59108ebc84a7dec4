"""Template contexts of the knowledge base's mail (§9): the recurring-issue alert, and the
review request or decision about an article."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from mailproc.outbound.values import Audience


class KbOutcome(StrEnum):
    """What a knowledge-base review mail tells: a request, or the reviewer's decision."""

    REVIEW = "review"
    PUBLISHED = "published"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class KbAlertContext:
    """To the Support Managers (§9.2.1): a recurring issue without a fresh article."""

    template: ClassVar[str] = "kb_alert"
    audience: ClassVar[Audience] = Audience.INTERNAL

    key: str
    count: int
    month: str
    kb_address: str
    title: str | None = None
    last_reviewed: dt.datetime | None = None
    alerted_at: dt.datetime | None = None  # set on the reminder (§9.2.4: publish in 5 days)


@dataclass(frozen=True, slots=True)
class KbReviewContext:
    """An article revision for review (to the managers), or the decision (to its author)."""

    template: ClassVar[str] = "kb_review"
    audience: ClassVar[Audience] = Audience.INTERNAL

    key: str
    title: str
    outcome: KbOutcome
    author: str
    internal: bool
    steps: tuple[tuple[str, tuple[str, ...]], ...]  # (locale, steps) per version
    reviewer: str | None = None
    note: str = ""
