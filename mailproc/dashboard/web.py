"""The dashboard's web application (Starlette): read-only pages rendered with autoescaped Jinja2.

Pages run as plain functions in Starlette's thread pool, so their queries and rendering never
block the event loop that ``serve`` shares with the SMTP listener.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio.to_thread
import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailproc.clock import Clock
from mailproc.config_dashboard import DashboardSettings
from mailproc.dashboard import charts, data, kpi
from mailproc.errors import TransientError
from mailproc.passwords import hash_password, verify_password
from mailproc.store.db import transaction
from mailproc.tickets import views
from mailproc.tickets.board import load_board

HERE = Path(__file__).parent
KPI_TTL_S = 60.0
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def _when(value: dt.datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"


def _size(value: int) -> str:
    if value < 1024:
        return f"{value} B"
    if value < 1024 * 1024:
        return f"{value / 1024:.1f} KiB"
    return f"{value / 1024 / 1024:.1f} MiB"


def _json(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True, default=str)


def template_environment() -> Environment:
    """Jinja2 for the pages: autoescape on for everything, undefined names are errors."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, size=_size, pretty=_json)
    return env


class LoginRequired:
    """HTTP Basic login against ``[dashboard] users`` (scrypt hashes), or a bearer token.

    A verified Authorization header is remembered (by its SHA-256) so that the board's refresh
    does not pay for scrypt every few seconds; failures are never remembered.
    """

    MEMO = 256
    CHALLENGE = 'Basic realm="mailproc dashboard", charset="UTF-8"'

    def __init__(self, app: ASGIApp, settings: DashboardSettings) -> None:
        self.app = app
        self._users = dict(settings.users)
        self._token = settings.token.encode()
        self._verified: set[bytes] = set()
        # an unknown user costs a real check too, so timing does not tell names apart
        self._decoy = hash_password("decoy") if self._users else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        if header and await self._allowed(header):
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse(
            "login required", 401, headers={"www-authenticate": self.CHALLENGE, **SECURITY_HEADERS}
        )
        await response(scope, receive, send)

    async def _allowed(self, header: str) -> bool:
        digest = hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()
        if digest in self._verified:
            return True
        if not await anyio.to_thread.run_sync(self._check, header):
            return False
        if len(self._verified) >= self.MEMO:
            self._verified.clear()
        self._verified.add(digest)
        return True

    def _check(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return bool(self._token) and hmac.compare_digest(value.strip().encode(), self._token)
        if scheme.lower() != "basic" or not self._users:
            return False
        try:
            user, _, password = (
                base64.b64decode(value.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self._users.get(user)
        return verify_password(password, hashed or self._decoy) and hashed is not None


class SecurityHeaders:
    """Adds the content-security and caching headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass(frozen=True, slots=True)
class Kpis:
    """Tiles and charts as computed at ``now`` (``computed``: monotonic seconds)."""

    computed: float
    now: dt.datetime
    tiles: dict[str, list[kpi.Tile]]
    charts: list[tuple[str, Markup]]


class Dashboard:
    """The pages and the JSON endpoint over one database, as of ``clock``."""

    def __init__(
        self, settings: DashboardSettings, sessions: sessionmaker[Session], clock: Clock
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock
        self.zone = ZoneInfo(settings.timezone)
        self.env = template_environment()
        self._kpi_lock = threading.Lock()
        self._kpis: Kpis | None = None

    def asgi(self) -> ASGIApp:
        """The ASGI application, behind a login when one is required."""
        app = Starlette(
            routes=[
                Route("/", self._board_page),
                Route("/api/board", self._board_json),
                Route("/tickets/{number:int}", self._ticket_page),
                Route("/customers/{customer_id:int}", self._customer_page),
                Route("/outbox", self._outbox_page),
                Route("/quarantine", self._quarantine_page),
                Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
            ],
            exception_handlers={TransientError: self._unavailable},
        )
        wrapped: ASGIApp = SecurityHeaders(app)
        if self.settings.login_required:
            wrapped = LoginRequired(wrapped, self.settings)
        return wrapped

    def _render(self, name: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**context))

    @staticmethod
    def _unavailable(_request: Request, error: Exception) -> Response:
        return PlainTextResponse(f"database unavailable, retrying: {error}", 503)

    def kpis(self, now: dt.datetime) -> Kpis:
        """The KPI tiles and charts, recomputed when a minute old (they move slowly; the board
        itself is read afresh on every request)."""
        with self._kpi_lock:
            cached = self._kpis
            if (
                cached is None
                or time.monotonic() - cached.computed >= KPI_TTL_S
                or abs(now - cached.now) >= dt.timedelta(seconds=KPI_TTL_S)
            ):
                cached = self._compute_kpis(now)
                self._kpis = cached
            return cached

    def _compute_kpis(self, now: dt.datetime) -> Kpis:
        zone = self.zone
        with transaction(self.sessions, commit=False) as session:
            tiles = {
                "today": kpi.tiles(session, kpi.today(now, zone), now),
                "this week": kpi.tiles(session, kpi.this_week(now, zone), now),
            }
            per_day = kpi.tickets_per_day(session, now, zone)
            weekly = kpi.weekly(session, now, zone)
            codes = kpi.top_error_codes(session, now)
        svgs = [
            (
                "New tickets per day by priority",
                charts.stacked_bars("New tickets per day", per_day.labels, per_day.values),
            ),
            (
                "First response within SLA, per week",
                charts.bars_with_target(
                    "First response within SLA per week",
                    weekly.labels,
                    weekly.values["first response %"],
                    y_max=100,
                    target=kpi.FIRST_RESPONSE_TARGET,
                    unit="%",
                ),
            ),
            (
                "Satisfaction, per week",
                charts.bars_with_target(
                    "Satisfaction per week",
                    weekly.labels,
                    weekly.values["satisfaction"],
                    y_max=5,
                    target=kpi.SATISFACTION_TARGET,
                ),
            ),
            ("Top error codes", charts.horizontal_bars("Top error codes", codes)),
        ]
        return Kpis(time.monotonic(), now, tiles, svgs)

    def render_board(self) -> str:
        """The board page's HTML (the benchmark times this)."""
        now = self.clock.now()
        kpis = self.kpis(now)
        with transaction(self.sessions, commit=False) as session:
            board = load_board(session, now)
        return self.env.get_template("board.html").render(
            board=board,
            rows=board.rows[: self.row_limit],
            tiles=kpis.tiles,
            charts=kpis.charts,
            refresh_s=self.settings.refresh_s,
        )

    @property
    def row_limit(self) -> int | None:
        """How many rows the page shows (``[dashboard] board_rows``; None: all)."""
        return self.settings.board_rows or None

    def board_data(self, limit: int | None = None) -> dict[str, Any]:
        """The board (``limit`` rows) and the KPI tiles as JSON; the page refreshes from it."""
        now = self.clock.now()
        tiles = self.kpis(now).tiles
        with transaction(self.sessions, commit=False) as session:
            board = load_board(session, now)
        return board.as_json(limit) | {
            "tiles": {
                period: [
                    {
                        "name": t.name,
                        "value": t.value,
                        "target": t.target,
                        "ok": t.ok,
                        "basis": t.basis,
                    }
                    for t in period_tiles
                ]
                for period, period_tiles in tiles.items()
            }
        }

    def _board_page(self, _request: Request) -> Response:
        return HTMLResponse(self.render_board())

    def _board_json(self, request: Request) -> Response:
        text = request.query_params.get("limit", "")
        if text and not text.isdigit():
            raise HTTPException(400, "limit must be a whole number")
        data = self.board_data(int(text) or None if text else None)
        return Response(orjson.dumps(data), media_type="application/json")

    def _ticket_page(self, request: Request) -> Response:
        number = int(request.path_params["number"])
        with transaction(self.sessions, commit=False) as session:
            detail = views.ticket_detail(session, number)
        if detail is None:
            raise HTTPException(404, f"no ticket {number}")
        return self._render("ticket.html", t=detail)

    def _customer_page(self, request: Request) -> Response:
        customer_id = int(request.path_params["customer_id"])
        with transaction(self.sessions, commit=False) as session:  # render before rollback
            page = data.customer_page(session, customer_id)
            if page is None:
                raise HTTPException(404, f"no customer {customer_id}")
            trend = charts.bars_with_target(
                "Satisfaction answers",
                [label for label, _ in page["scores"]],
                [score for _, score in page["scores"]],
                y_max=5,
                target=kpi.SATISFACTION_TARGET,
            )
            return self._render("customer.html", trend=trend, **page)

    def _outbox_page(self, _request: Request) -> Response:
        with transaction(self.sessions, commit=False) as session:
            return self._render("outbox.html", **data.outbox_page(session, self.clock.now()))

    def _quarantine_page(self, _request: Request) -> Response:
        with transaction(self.sessions, commit=False) as session:
            return self._render("quarantine.html", rows=data.quarantine_page(session))
