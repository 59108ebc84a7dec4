"""Settings: built-in defaults, overridden by a TOML file, overridden by MAILPROC_* variables.

The environment rule: ``MAILPROC_<SECTION>_<KEY>`` in upper case sets ``[section] key``; for
example ``MAILPROC_DATABASE_URL`` sets ``[database] url`` and ``MAILPROC_INTAKE_MAX_PARTS`` sets
``[intake] max_parts``. List values take JSON (``MAILPROC_SUPPORT_ADDRESSES='["a@x.com"]'``).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mailproc.core.addresses import normalize_address, normalize_domain
from mailproc.core.limits import IntakeLimits

CONFIG_FILE_NAME = "mailproc.toml"
CONFIG_ENV_VAR = "MAILPROC_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used; the message lists every bad value, one per line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    """Where tickets live: SQLite file by default, PostgreSQL (psycopg 3) beyond one machine."""

    url: str = "sqlite:///mailproc.db"
    busy_timeout_ms: int = Field(5000, ge=0, le=600_000)

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        if url.startswith("postgresql:"):
            url = "postgresql+psycopg:" + url.removeprefix("postgresql:")
        return url


class SupportSettings(_Section):
    """Who we are: the addresses customers write to and the domain of our Message-IDs."""

    name: str = "DataFlow Support"
    addresses: tuple[str, ...] = ("support@dataflow.com",)
    domain: str = "dataflow.com"
    phone: str = "+1-800-555-1234"

    @field_validator("addresses")
    @classmethod
    def _valid_addresses(cls, addresses: tuple[str, ...]) -> tuple[str, ...]:
        normalized = []
        for address in addresses:
            canonical = normalize_address(address)
            if canonical is None:
                raise ValueError(f"{address!r} is not a valid mail address")
            normalized.append(canonical)
        if not normalized:
            raise ValueError("at least one support address is required")
        return tuple(normalized)

    @field_validator("domain")
    @classmethod
    def _valid_domain(cls, domain: str) -> str:
        canonical = normalize_domain(domain)
        if canonical is None:
            raise ValueError(f"{domain!r} is not a valid domain name")
        return canonical


class IntakeSettings(_Section):
    """Limits applied to every raw message before it is parsed."""

    max_message_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(256 * 1024, ge=1024)
    max_mime_depth: int = Field(12, ge=1, le=100)
    max_parts: int = Field(250, ge=1, le=10_000)
    batch_size: int = Field(200, ge=1, le=10_000)

    def limits(self) -> IntakeLimits:
        """The limits as the pure core sees them."""
        return IntakeLimits(
            max_message_bytes=self.max_message_bytes,
            max_header_bytes=self.max_header_bytes,
            max_mime_depth=self.max_mime_depth,
            max_parts=self.max_parts,
        )


class ProcessingSettings(_Section):
    """How the worker turns pending raw mail into tickets."""

    batch_size: int = Field(100, ge=1, le=5_000)


class Settings(_Section):
    """Every mailproc setting; see README.md "Configuration"."""

    database: DatabaseSettings = DatabaseSettings()
    support: SupportSettings = SupportSettings()
    intake: IntakeSettings = IntakeSettings()
    processing: ProcessingSettings = ProcessingSettings()


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: ``--config``, then ``$MAILPROC_CONFIG``, then ./mailproc.toml."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV_VAR):
        return Path(os.environ[CONFIG_ENV_VAR])
    return Path(CONFIG_FILE_NAME)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load and validate the settings; raise ConfigError listing every problem."""
    chosen = config_path(path)
    named = path is not None or bool(os.environ.get(CONFIG_ENV_VAR))
    data: dict[str, Any] = {}
    if chosen.exists():
        try:
            data = tomllib.loads(chosen.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{chosen}: not valid TOML: {exc}") from exc
    elif named:
        raise ConfigError(f"{chosen}: config file not found")
    try:
        return Settings.model_validate(_merge_environment(data, os.environ))
    except ValidationError as exc:
        raise ConfigError(_describe(chosen, exc)) from exc


def _merge_environment(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Overlay ``MAILPROC_<SECTION>_<KEY>`` variables on the file's values."""
    merged = {
        section: dict(values) if isinstance(values, dict) else values
        for section, values in data.items()
    }
    for section_name, section_field in Settings.model_fields.items():
        section_model = section_field.annotation
        assert isinstance(section_model, type) and issubclass(section_model, BaseModel)
        for key, key_field in section_model.model_fields.items():
            raw = environ.get(f"MAILPROC_{section_name}_{key}".upper())
            if raw is None:
                continue
            value: Any = raw
            if _wants_json(key_field.annotation):
                try:
                    value = json.loads(raw)
                except json.JSONDecodeError:
                    value = raw
            section = merged.setdefault(section_name, {})
            if isinstance(section, dict):
                section[key] = value
    return merged


def _wants_json(annotation: Any) -> bool:
    origin = get_origin(annotation)
    return origin in (tuple, list, dict) or annotation in (tuple, list, dict)


def _describe(path: Path, exc: ValidationError) -> str:
    lines = [f"invalid configuration ({path} and MAILPROC_* variables):"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)
