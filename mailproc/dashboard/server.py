"""Runs the dashboard on the caller's asyncio loop (``serve``'s), with uvicorn.

The socket is bound here, so a busy port or a refused address is a StartupError with its
reason; uvicorn's own signal handling is left out (the supervisor owns SIGTERM and SIGINT).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterator

import uvicorn

from mailproc.clock import Clock
from mailproc.config import DatabaseSettings
from mailproc.config_dashboard import DashboardSettings
from mailproc.dashboard.data import reader_engine, reader_sessions
from mailproc.dashboard.web import Dashboard
from mailproc.errors import StartupError

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: it stops when ``should_exit`` is set."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DashboardServer:
    """The dashboard as one component of ``serve``: start, then stop on shutdown."""

    def __init__(
        self, database: DatabaseSettings, clock: Clock, settings: DashboardSettings
    ) -> None:
        self.settings = settings
        self.engine = reader_engine(database)
        self.dashboard = Dashboard(settings, reader_sessions(self.engine), clock)
        self.port = 0
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    def _bind(self) -> socket.socket:
        settings = self.settings
        if settings.login_required and not (settings.users or settings.token):
            raise StartupError(
                f"dashboard: {settings.listen} is not a loopback address; configure "
                "[dashboard] users (or token) for a login, or listen on 127.0.0.1",
                os.EX_CONFIG,
            )
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        try:
            sock = socket.create_server((settings.host, settings.port), family=family)
        except OSError as error:
            raise StartupError(
                f"dashboard: cannot listen on {settings.listen}: "
                f"{os.strerror(error.errno) if error.errno else error}",
                os.EX_UNAVAILABLE,
            ) from error
        self.port = sock.getsockname()[1]
        return sock

    async def start(self) -> None:
        """Bind and serve in the background; StartupError when it cannot."""
        sock = self._bind()
        config = uvicorn.Config(
            self.dashboard.asgi(),
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            ssl_certfile=self.settings.tls_cert or None,
            ssl_keyfile=self.settings.tls_key or None,
        )
        server = _EmbeddedServer(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="dashboard")
        while not server.started:
            if self._task.done():
                sock.close()
                error = self._task.exception()
                raise StartupError(f"dashboard: cannot start: {error}", os.EX_CONFIG)
            await asyncio.sleep(0.01)
        scheme = "https" if self.settings.tls_cert else "http"
        log.info("dashboard on %s://%s:%d/", scheme, self.settings.host, self.port)

    async def stop(self) -> None:
        """Finish the requests in flight and close."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self.engine.dispose()
