"""Translations and locale-bound formatting for the templates (gettext catalogs, Babel).

A catalog falls back to the English source string by string; a translation that loses or
adds a ``%(name)s`` placeholder is ignored, so a broken entry never breaks a mail.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import (
    format_date,
    format_time,
    format_timedelta,
    get_datetime_format,
    get_timezone_name,
)
from babel.numbers import format_currency
from babel.units import format_unit

from mailproc.outbound.values import Money

logger = logging.getLogger(__name__)

CATALOG_DOMAIN: Final = "mailproc"
_PLACEHOLDER = re.compile(r"%\((\w+)\)")

# Texts a locale's filters remember: a mail shows its promised times in the text and the HTML
# part, and the mails of a batch share their due minutes and their SLA spans.
_FORMATTED_PER_LOCALE: Final = 4096


class UnformattableValue(ValueError):
    """A value a template cannot show: a naive datetime or an unknown time zone."""


class _FallbackRecorder(gettext.NullTranslations):
    """The last fallback of a catalog: records each source string it had no entry for."""

    def __init__(self) -> None:
        super().__init__()
        self.missing: set[str] = set()

    def gettext(self, message: str) -> str:
        self.missing.add(message)
        return message

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        self.missing.add(msgid1)
        return msgid1 if n == 1 else msgid2


@dataclass
class SafeCatalog:
    """gettext over a compiled catalog, falling back to the English source string by string.

    A translation is used only if it has exactly the source's ``%(name)s`` placeholders and
    formats cleanly, so a missing or broken entry yields English, never a failed mail.
    ``fallbacks`` collects the source strings that were shown in English that way.
    """

    translations: gettext.NullTranslations
    fallbacks: set[str] = field(default_factory=set)
    _verdicts: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)
    _found: dict[str, str] = field(default_factory=dict, repr=False)

    def gettext(self, message: str) -> str:
        """The usable translation of ``message``, else ``message`` (looked up once each)."""
        found = self._found.get(message)
        if found is None:
            found = self._found[message] = self._checked(
                message, self.translations.gettext(message)
            )
        return found

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """The usable plural translation, else the English singular or plural."""
        source = singular if n == 1 else plural
        return self._checked(source, self.translations.ngettext(singular, plural, n))

    def _checked(self, source: str, translated: str) -> str:
        verdict = self._verdicts.get((source, translated))
        if verdict is None:
            verdict = self._verdicts[(source, translated)] = compatible(source, translated)
            if not verdict:
                logger.warning("broken translation of %r ignored: %r", source, translated)
                self.fallbacks.add(source)
        return translated if verdict else source


def compatible(source: str, translated: str) -> bool:
    """True when ``translated`` can stand in for ``source`` under ``%``-formatting."""
    names = set(_PLACEHOLDER.findall(source))
    if set(_PLACEHOLDER.findall(translated)) != names:
        return False
    try:
        translated % dict.fromkeys(names, 0)
    except (KeyError, ValueError, TypeError):
        return False
    return True


def catalog_path(locales_dir: Path, locale: str) -> Path:
    """Where the compiled catalog of ``locale`` lives."""
    return locales_dir / locale / "LC_MESSAGES" / f"{CATALOG_DOMAIN}.mo"


def load_catalog(locales_dir: Path, locale: str) -> SafeCatalog:
    """The compiled catalog of ``locale``; English (the source strings) when there is none."""
    path = catalog_path(locales_dir, locale)
    if not path.is_file():
        return SafeCatalog(gettext.NullTranslations())
    with path.open("rb") as handle:
        translations = gettext.GNUTranslations(handle)
    recorder = _FallbackRecorder()
    translations.add_fallback(recorder)
    return SafeCatalog(translations, recorder.missing)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnformattableValue(f"unknown time zone {name!r}") from exc


def _aware(value: dt.datetime, zone: str) -> dt.datetime:
    if value.tzinfo is None:
        raise UnformattableValue(f"naive datetime {value.isoformat()}: times must carry a zone")
    return value.astimezone(_zone(zone))


def exact_span(value: dt.timedelta, locale: str | Locale, largest: str = "day") -> str:
    """A duration in the largest unit (up to ``largest``) that states it exactly: "3 days",
    "36 hours", "90 minutes". Unlike ``format_timedelta`` it never rounds, so the text agrees
    with the due time beside it; working time is stated in hours ("24 hours", not "1 day").
    """
    minutes = round(value.total_seconds() / 60)
    units = (("day", 24 * 60), ("hour", 60), ("minute", 1))
    for unit, size in units[[name for name, _ in units].index(largest) :]:
        if minutes % size == 0:
            return format_unit(minutes // size, f"duration-{unit}", locale=locale)
    raise UnformattableValue(f"duration {value} is not a whole number of minutes")


def locale_filters(locale: str) -> dict[str, Callable[..., str]]:
    """The formatting filters bound to one locale (Babel): dates, durations, money, languages.

    The Babel locale and the date-and-time pattern are looked up once, not at every value; a
    date, a time to the minute or a span is formatted once and then remembered (Babel takes
    tens of microseconds a value, a few hundred for a full date and time with its zone).
    """
    babel_locale = Locale.parse(locale)
    pattern = str(get_datetime_format("long", locale=babel_locale)).replace("'", "")
    remembered = functools.lru_cache(maxsize=_FORMATTED_PER_LOCALE)

    @remembered
    def minute_text(wall: dt.datetime, fold: int, zone: str) -> str:
        # a zone's wall time and fold name one instant, the repeated hour's second one too
        local = wall.replace(tzinfo=_zone(zone), fold=fold)
        date_text = format_date(local, "full", locale=babel_locale)
        time_text = format_time(local, "short", locale=babel_locale)
        zone_text = get_timezone_name(local, "long", locale=babel_locale)
        return pattern.replace("{1}", date_text).replace("{0}", time_text) + f" ({zone_text})"

    @remembered
    def long_date(value: dt.date) -> str:
        return format_date(value, "long", locale=babel_locale)

    @remembered
    def span_text(value: dt.timedelta, largest: str) -> str:
        return exact_span(value, babel_locale, largest)

    def datetime_filter(value: dt.datetime, zone: str) -> str:
        local = _aware(value, zone)  # the text shows minutes: seconds are not part of the key
        wall = local.replace(second=0, microsecond=0, tzinfo=None)
        return minute_text(wall, local.fold, zone)

    def date_filter(value: dt.datetime, zone: str) -> str:
        return long_date(_aware(value, zone).date())

    def day_filter(value: dt.date) -> str:
        return long_date(value)

    def duration_filter(value: dt.timedelta) -> str:
        return format_timedelta(value, locale=babel_locale)

    def span_filter(value: dt.timedelta) -> str:
        return span_text(value, "day")

    def span_hours_filter(value: dt.timedelta) -> str:
        return span_text(value, "hour")

    def money_filter(value: Money) -> str:
        return format_currency(value.amount, value.currency, locale=babel_locale)

    def language_name_filter(code: str | None) -> str:
        try:
            return Locale.parse(code or "").get_display_name(locale) or str(code)
        except (ValueError, UnknownLocaleError):
            return str(code)

    return {
        "datetime": datetime_filter,
        "date": date_filter,
        "day": day_filter,
        "duration": duration_filter,
        "span": span_filter,
        "span_hours": span_hours_filter,
        "money": money_filter,
        "language_name": language_name_filter,
    }
