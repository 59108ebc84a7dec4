"""Error-code catalog: each DataFlow code's area, default priority, team and localized steps."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from mailproc.core.model import Priority

FALLBACK_LANGUAGE = "en"

# PREFIX-NUMBER, e.g. DS-1001 or COL-11001; any dash-like character; not part of a longer token.
# The scan looks for the dash and number first (a rare character), then reads the prefix.
_DASH_NUMBER = re.compile(r"[-‐‑–]([0-9]{4,5})(?![\w-])")
_PREFIX_BEFORE = re.compile(r"(?:^|[^\w-])([A-Za-z]{2,5})$")
_CODE_KEY = re.compile(r"[A-Z]{2,5}-[0-9]{4,5}")


class _CodeData(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    area: str
    priority: Priority
    team: str
    title: dict[str, str]
    steps: dict[str, list[str]]


class _CatalogData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    codes: dict[str, dict[str, Any]] = {}
    ignore_prefixes: list[str] | None = None


class CatalogError(ValueError):
    """Catalog data (packaged or from config) is malformed."""


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One catalog entry; titles and steps are keyed by language (en, es, fr)."""

    code: str
    area: str
    priority: Priority
    team: str
    titles: Mapping[str, str]
    steps: Mapping[str, tuple[str, ...]] = field(repr=False)

    def title(self, language: str) -> str:
        """The title in ``language``, or in English when it has no translation."""
        return self.titles.get(language) or self.titles[FALLBACK_LANGUAGE]

    def troubleshooting(self, language: str) -> tuple[str, ...]:
        """The troubleshooting steps in ``language``, or in English."""
        return self.steps.get(language) or self.steps[FALLBACK_LANGUAGE]

    def __reduce__(self) -> tuple[Any, ...]:  # read-only mappings do not pickle: plain dicts do
        fields = (self.code, self.area, self.priority, self.team)
        return _error_code, (*fields, dict(self.titles), dict(self.steps))


@dataclass(frozen=True, slots=True)
class CodeMatches:
    """Codes found in a text: catalog entries and unknown codes of the same shape, in order."""

    known: tuple[ErrorCode, ...]
    unknown: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Catalog:
    """All known codes plus the prefixes that look like codes but never are (ISO-27001)."""

    codes: Mapping[str, ErrorCode]
    ignore_prefixes: frozenset[str]

    def __reduce__(self) -> tuple[Any, ...]:  # sent to the parse workers with the classifier
        return _catalog, (dict(self.codes), self.ignore_prefixes)

    def get(self, code: str) -> ErrorCode | None:
        """The entry for ``code`` (any case), or None."""
        return self.codes.get(code.upper())

    def find_codes(self, text: str) -> CodeMatches:
        """Find codes in ``text``; an unknown code counts only when written in upper case."""
        known: dict[str, ErrorCode] = {}
        unknown: dict[str, None] = {}
        for match in _DASH_NUMBER.finditer(text):
            before = _PREFIX_BEFORE.search(text[max(0, match.start() - 6) : match.start()])
            if before is None:
                continue
            prefix = before[1]
            code = f"{prefix.upper()}-{match[1]}"
            entry = self.codes.get(code)
            if entry is not None:
                known.setdefault(code, entry)
            elif prefix.isupper() and prefix not in self.ignore_prefixes:
                unknown[code] = None
        return CodeMatches(known=tuple(known.values()), unknown=tuple(unknown))

    def with_overrides(self, data: Mapping[str, Any]) -> Catalog:
        """A new catalog with config ``data`` (same shape as the packaged file) applied.

        Fields given for an existing code replace that field; a new code needs every field.
        ``ignore_prefixes``, when given, replaces the list.
        """
        try:
            parsed = _CatalogData.model_validate(data)
        except ValidationError as exc:
            raise CatalogError(f"catalog: {exc}") from exc
        codes = dict(self.codes)
        for code, fields in parsed.codes.items():
            current = codes.get(code.upper())
            entry = _entry(code, {**(_as_data(current) if current is not None else {}), **fields})
            codes[entry.code] = entry
        prefixes = self.ignore_prefixes
        if parsed.ignore_prefixes is not None:
            prefixes = frozenset(prefix.upper() for prefix in parsed.ignore_prefixes)
        return Catalog(codes=MappingProxyType(codes), ignore_prefixes=prefixes)


def _error_code(
    code: str,
    area: str,
    priority: Priority,
    team: str,
    titles: dict[str, str],
    steps: dict[str, tuple[str, ...]],
) -> ErrorCode:
    return ErrorCode(code, area, priority, team, MappingProxyType(titles), MappingProxyType(steps))


def _catalog(codes: dict[str, ErrorCode], ignore_prefixes: frozenset[str]) -> Catalog:
    return Catalog(codes=MappingProxyType(codes), ignore_prefixes=ignore_prefixes)


def catalog_from_data(data: Mapping[str, Any]) -> Catalog:
    """Build a catalog from parsed TOML data (the packaged file's shape)."""
    empty = Catalog(codes=MappingProxyType({}), ignore_prefixes=frozenset())
    return empty.with_overrides(data)


def parse_catalog(text: str) -> Catalog:
    """Build a catalog from TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"error-code catalog is not valid TOML: {exc}") from exc
    return catalog_from_data(data)


def load_default_catalog() -> Catalog:
    """Read the catalog shipped in the package (mailproc/data/error_codes.toml)."""
    resource = files("mailproc") / "data" / "error_codes.toml"
    return parse_catalog(resource.read_text(encoding="utf-8"))


def _entry(code: str, fields: Mapping[str, Any]) -> ErrorCode:
    normalized = code.upper()
    if _CODE_KEY.fullmatch(normalized) is None:
        raise CatalogError(f"catalog code {code!r} is not shaped like AB-1234")
    try:
        data = _CodeData.model_validate(fields)
    except ValidationError as exc:
        raise CatalogError(f"catalog code {normalized}: {exc}") from exc
    steps = {lang: tuple(lines) for lang, lines in data.steps.items() if lines}
    if FALLBACK_LANGUAGE not in data.title or FALLBACK_LANGUAGE not in steps:
        raise CatalogError(f"catalog code {normalized}: an English title and steps are required")
    return ErrorCode(
        code=normalized,
        area=data.area,
        priority=data.priority,
        team=data.team,
        titles=MappingProxyType(dict(data.title)),
        steps=MappingProxyType(steps),
    )


def _as_data(entry: ErrorCode) -> dict[str, Any]:
    return {
        "area": entry.area,
        "priority": entry.priority,
        "team": entry.team,
        "title": dict(entry.titles),
        "steps": {lang: list(lines) for lang, lines in entry.steps.items()},
    }
