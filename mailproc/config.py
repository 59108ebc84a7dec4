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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mailproc.config_dashboard import DashboardSettings
from mailproc.config_transport import (
    ImapSettings,
    ListenerSettings,
    OutboxSettings,
    RelaySettings,
    Section,
    ServeSettings,
)
from mailproc.core.addresses import normalize_address, normalize_domain
from mailproc.core.detect import SPAM_HEADERS, HeaderRule
from mailproc.core.limits import IntakeLimits

CONFIG_FILE_NAME = "mailproc.toml"
CONFIG_ENV_VAR = "MAILPROC_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used; the message lists every bad value, one per line."""


def _normalized_addresses(addresses: tuple[str, ...]) -> tuple[str, ...]:
    """Validate and normalize a non-empty list of mail addresses."""
    normalized = []
    for address in addresses:
        canonical = normalize_address(address)
        if canonical is None:
            raise ValueError(f"{address!r} is not a valid mail address")
        normalized.append(canonical)
    if not normalized:
        raise ValueError("at least one address is required")
    return tuple(normalized)


class DatabaseSettings(Section):
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


class SupportSettings(Section):
    """Who we are: the addresses customers write to and the domain of our Message-IDs."""

    name: str = "DataFlow Support"
    addresses: tuple[str, ...] = ("support@dataflow.com",)
    domain: str = "dataflow.com"
    phone: str = "+1-800-555-1234"
    # The From name of an agent's reply to a customer; {agent} and {support} are filled in.
    agent_from: str = Field("{agent} via {support}", min_length=1, max_length=200)

    @field_validator("addresses")
    @classmethod
    def _valid_addresses(cls, addresses: tuple[str, ...]) -> tuple[str, ...]:
        return _normalized_addresses(addresses)

    @field_validator("domain")
    @classmethod
    def _valid_domain(cls, domain: str) -> str:
        canonical = normalize_domain(domain)
        if canonical is None:
            raise ValueError(f"{domain!r} is not a valid domain name")
        return canonical


class IntakeSettings(Section):
    """Limits applied to every raw message before it is parsed."""

    max_message_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(256 * 1024, ge=1024)
    max_mime_depth: int = Field(12, ge=1, le=100)
    max_parts: int = Field(250, ge=1, le=10_000)
    max_understood_chars: int = Field(256 * 1024, ge=1024)
    batch_size: int = Field(200, ge=1, le=10_000)

    def limits(self) -> IntakeLimits:
        """The limits as the pure core sees them."""
        return IntakeLimits(
            max_message_bytes=self.max_message_bytes,
            max_header_bytes=self.max_header_bytes,
            max_mime_depth=self.max_mime_depth,
            max_parts=self.max_parts,
            max_understood_chars=self.max_understood_chars,
        )


class FilteringSettings(Section):
    """Header rules ("Header-Name: regular expression", any case) for what an upstream filter
    marked: spam, and bulk beyond Precedence, List-Id and List-Unsubscribe. Such mail is
    stored and listed but opens no ticket (``mailproc inbound promote`` turns one into one)."""

    spam_headers: tuple[str, ...] = SPAM_HEADERS
    bulk_headers: tuple[str, ...] = ()

    @field_validator("spam_headers", "bulk_headers")
    @classmethod
    def _rules(cls, rules: tuple[str, ...]) -> tuple[str, ...]:
        for rule in rules:
            HeaderRule.parse(rule)
        return rules

    def spam_rules(self) -> tuple[HeaderRule, ...]:
        """The spam rules as the detector takes them."""
        return tuple(HeaderRule.parse(rule) for rule in self.spam_headers)

    def bulk_rules(self) -> tuple[HeaderRule, ...]:
        """The extra bulk rules as the detector takes them."""
        return tuple(HeaderRule.parse(rule) for rule in self.bulk_headers)


class ProcessingSettings(Section):
    """How the worker turns pending raw mail into tickets."""

    # fewer, larger transactions: each batch costs about a dozen round trips of its own
    # (measured 250 against 100: 5-15% more mail per second, on SQLite and PostgreSQL)
    batch_size: int = Field(250, ge=1, le=5_000)
    # extra processes that parse while this one writes to the database (0: parse in-process);
    # two keep a 2-core machine busy: measured 1.2-1.5x the throughput of one
    parse_workers: int = Field(2, ge=0, le=16)
    # acknowledgments, alerts, timers and agent commands; false imports history silently
    followups: bool = True


# --- threading, identity and automatic replies (issue 3) --------------------------------------


class ThreadingSettings(Section):
    """Reply addresses with per-ticket tokens, our Message-ID domain, the reopen window."""

    reply_local_part: str = Field("support", pattern=r"^[a-z0-9._-]{1,40}$")
    reply_domain: str = ""  # empty: the support domain
    message_id_domain: str = ""  # empty: mailproc.<support domain>
    reply_token_secrets: tuple[str, ...] = Field(default=(), repr=False)
    reopen_window_days: float = Field(14, ge=0, le=3650)
    copy_cc: bool = True  # the customer's Cc addresses get the acknowledgment and agent replies

    @field_validator("reply_token_secrets")
    @classmethod
    def _strong_secrets(cls, secrets: tuple[str, ...]) -> tuple[str, ...]:
        if any(len(secret.encode()) < 16 for secret in secrets):
            raise ValueError("each secret needs at least 16 bytes")
        return secrets


class AgentSettings(Section):
    """One staff member who may work tickets by mail."""

    name: str = Field(min_length=1, max_length=100)
    roles: tuple[str, ...] = ("agent",)
    addresses: tuple[str, ...] = Field(min_length=1)

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        from mailproc.core.identity import AgentRole

        known = {role.value for role in AgentRole}
        unknown = [role for role in roles if role not in known]
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; known: {sorted(known)}")
        return roles

    @field_validator("addresses")
    @classmethod
    def _valid_addresses(cls, addresses: tuple[str, ...]) -> tuple[str, ...]:
        return _normalized_addresses(addresses)


class IdentitySettings(Section):
    """Agents and the Authentication-Results we trust to prove their mail is theirs."""

    # Empty: agents' mail is refused (an error mail to the agent) unless trust_from_address.
    trusted_authserv_id: str = ""
    trust_from_address: bool = False  # a closed network only: an agent recognised by From alone
    agents: tuple[AgentSettings, ...] = ()


class AutoReplySettings(Section):
    """A per-sender budget for automatic replies, against mail storms."""

    max_per_sender: int = Field(3, ge=0, le=1000)
    period_minutes: float = Field(60, gt=0, le=7 * 24 * 60)


# --- classification, SLA and the error-code catalog (issue 4) ---------------------------------
# These three sections are free-form tables checked by the core's own builders (see
# mailproc/core/classify.py, sla.py and catalog.py); MAILPROC_CLASSIFY='{...}' (JSON) overlays
# a whole section from the environment.


# --- outbound mail (issue 5) ---------------------------------------------------------------


class CompanySettings(Section):
    """Who signs outbound mail."""

    brand: str = "DataFlow"
    legal_name: str = "DataFlow Solutions"
    billing_email: str = "billing@dataflow.com"
    phone_plans: tuple[str, ...] = ("Professional", "Enterprise")
    postal_address: str = ""
    incident_channel: str = "Slack #incident-channel"
    support_manager_name: str = "Support Manager"
    timezone: str = "UTC"  # reports: weeks, months and the Monday 08:00 schedule (issue 16)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        return name

    @field_validator("billing_email")
    @classmethod
    def _valid_billing(cls, address: str) -> str:
        return _normalized_addresses((address,))[0]


class IncidentSettings(Section):
    """When P0 reports become one incident (§4.3, §7.3): ``min_customers`` distinct customers
    reporting the same error code, each report within ``window_minutes`` of the previous."""

    min_customers: int = Field(3, ge=2)
    window_minutes: float = Field(30, gt=0)
    status_page: str = "status.dataflow.com"


class CreditSettings(Section):
    """Amounts the procedures promise: SLA-breach credit (§5.2), low-score credit (§8)."""

    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    sla_breach: float = Field(50.0, ge=0)
    low_score_enterprise: float = Field(100.0, ge=0)
    refund_settlement_days: tuple[int, int] = (5, 7)


class LocaleSettings(Section):
    """Which languages replies may use (§5.4) and how sure language detection must be."""

    min_detection_confidence: float = Field(0.8, ge=0, le=1)
    offer: tuple[dict[str, tuple[str, ...]], ...] = (
        {"plans": ("Enterprise",), "regions": ("EMEA", "LATAM"), "locales": ("es", "fr")},
    )
    region_overrides: dict[str, str] = Field(default_factory=dict)
    # §5.4 by default: a customer's preferred es/fr is written only where ``offer`` offers it;
    # true writes every preferred locale (the behaviour before issue 14).
    preference_overrides_policy: bool = False


class NotifySettings(Section):
    """Where internal notifications go: the agents' address and one address per role.

    A role's mail goes to the configured agents with that role and to its address here.
    """

    agents_address: str = "agents@dataflow.com"
    leadership_address: str = "leadership@dataflow.com"  # the monthly report (issue 16)
    max_attachment_bytes: int = Field(10 * 1024 * 1024, ge=0)  # the customer's, per alert
    role_addresses: dict[str, str] = Field(
        default_factory=lambda: {
            "support_manager": "support-manager@dataflow.com",
            "support_director": "support-director@dataflow.com",
            "finance_director": "finance@dataflow.com",
            "devops": "devops@dataflow.com",
            "engineering": "engineering@dataflow.com",
            "product": "product@dataflow.com",
            "cto": "cto@dataflow.com",
        }
    )

    @field_validator("agents_address", "leadership_address")
    @classmethod
    def _valid_agents_address(cls, address: str) -> str:
        return _normalized_addresses((address,))[0]

    @field_validator("role_addresses")
    @classmethod
    def _valid_roles(cls, addresses: dict[str, str]) -> dict[str, str]:
        from mailproc.core.identity import AgentRole

        known = {role.value for role in AgentRole}
        unknown = sorted(set(addresses) - known)
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; known: {sorted(known)}")
        return {role: _normalized_addresses((a,))[0] for role, a in addresses.items()}


class KbSettings(Section):
    """The knowledge base (§9): its command address and the recurring-issue rules."""

    address: str = "kb@dataflow.com"  # agents' mail to it is a #kb command mail, not a ticket
    recurring_threshold: int = Field(10, ge=1)  # more tickets than this a month: alert (§9.2.1)
    fresh_days: float = Field(90, gt=0)  # an article reviewed this recently needs no alert
    publish_days: float = Field(5, gt=0)  # not published this long after the alert: re-alert
    monthly_target: int = Field(10, ge=0)  # articles published per month (§9.3)

    @field_validator("address")
    @classmethod
    def _valid_address(cls, address: str) -> str:
        return _normalized_addresses((address,))[0]


class Settings(Section):
    """Every mailproc setting; see README.md "Configuration"."""

    database: DatabaseSettings = DatabaseSettings()
    support: SupportSettings = SupportSettings()
    intake: IntakeSettings = IntakeSettings()
    filtering: FilteringSettings = FilteringSettings()
    processing: ProcessingSettings = ProcessingSettings()
    threading: ThreadingSettings = ThreadingSettings()
    identity: IdentitySettings = IdentitySettings()
    auto_reply: AutoReplySettings = AutoReplySettings()
    classify: dict[str, Any] = Field(default_factory=dict)
    sla: dict[str, Any] = Field(default_factory=dict)
    catalog: dict[str, Any] = Field(default_factory=dict)
    company: CompanySettings = CompanySettings()
    credits: CreditSettings = CreditSettings()
    incidents: IncidentSettings = IncidentSettings()
    locales: LocaleSettings = LocaleSettings()
    notify: NotifySettings = NotifySettings()
    kb: KbSettings = KbSettings()
    relay: RelaySettings = RelaySettings()
    outbox: OutboxSettings = OutboxSettings()

    @model_validator(mode="after")
    def _core_tables_build(self) -> Settings:
        """The classify, sla and catalog tables must build; their errors name the section."""
        from mailproc.core.catalog import CatalogError, load_default_catalog
        from mailproc.core.classify import ClassifyError, classifier_from_config
        from mailproc.core.sla import SlaError, sla_policy_from_config

        try:
            catalog = load_default_catalog().with_overrides(self.catalog)
            classifier_from_config(catalog, self.classify)
            sla_policy_from_config(self.sla)
        except (CatalogError, ClassifyError, SlaError) as error:
            raise ValueError(str(error)) from error
        return self

    listener: ListenerSettings = ListenerSettings()
    imap: ImapSettings = ImapSettings()
    serve: ServeSettings = ServeSettings()
    dashboard: DashboardSettings = DashboardSettings()


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
        whole = environ.get(f"MAILPROC_{section_name}".upper())
        if whole is not None:
            try:
                overlay = json.loads(whole)
            except json.JSONDecodeError:
                overlay = whole  # reported by validation as "not a valid table"
            current = merged.get(section_name)
            if isinstance(overlay, dict) and isinstance(current, dict):
                merged[section_name] = {**current, **overlay}
            else:
                merged[section_name] = overlay
        section_model = section_field.annotation
        if not (isinstance(section_model, type) and issubclass(section_model, BaseModel)):
            continue
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
        elif error["type"] in {"tuple_type", "list_type"} and isinstance(error["input"], str):
            items = [item.strip() for item in error["input"].split(",") if item.strip()]
            message += f"; lists take JSON: '{json.dumps(items)}'"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)
