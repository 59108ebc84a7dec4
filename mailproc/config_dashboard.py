"""``[dashboard]`` settings: where the dashboard listens and who may log in."""

from __future__ import annotations

import ipaddress
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from mailproc.config_transport import Section, split_host_port
from mailproc.passwords import is_password_hash

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DashboardSettings(Section):
    """The read-only dashboard of ``mailproc serve`` (and ``mailproc dashboard``)."""

    enabled: bool = False  # run inside `mailproc serve`
    listen: str = "127.0.0.1:8080"
    # name -> scrypt hash from `mailproc dashboard --hash-password`
    users: dict[str, str] = Field(default_factory=dict, repr=False)
    token: str = Field("", repr=False)  # for scripts: "Authorization: Bearer <token>"
    refresh_s: int = Field(5, ge=1, le=10)
    board_rows: int = Field(500, ge=0)  # the most urgent rows on the page; 0: every open ticket
    timezone: str = "UTC"  # what "today" and "this week" mean on the KPI tiles
    tls_cert: str = ""
    tls_key: str = ""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        split_host_port(listen)
        return listen

    @field_validator("users")
    @classmethod
    def _hashed(cls, users: dict[str, str]) -> dict[str, str]:
        for name, hashed in users.items():
            if not name or ":" in name:
                raise ValueError(f"user name {name!r} must be non-empty and without ':'")
            if not is_password_hash(hashed):
                raise ValueError(
                    f"users.{name} is not a password hash (make one with "
                    "`mailproc dashboard --hash-password`)"
                )
        return users

    @field_validator("token")
    @classmethod
    def _long_token(cls, token: str) -> str:
        if token and len(token) < 32:
            raise ValueError("token must be at least 32 characters")
        return token

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not an IANA time zone") from None
        return name

    @model_validator(mode="after")
    def _tls_pair(self) -> DashboardSettings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        return self

    @property
    def host(self) -> str:
        """The address to bind."""
        return split_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        """The port to bind (0: any free port)."""
        return split_host_port(self.listen)[1]

    @property
    def login_required(self) -> bool:
        """Off loopback always; on loopback when users or a token are configured."""
        return not is_loopback(self.host) or bool(self.users or self.token)
