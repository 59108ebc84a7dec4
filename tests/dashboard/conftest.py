"""A seeded database with a known board, and the dashboard running on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.config_dashboard import DashboardSettings
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.resources import resource_path
from mailproc.supervisor import Components, Supervisor

T0 = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(minutes=50)
XSS_SUBJECT = "<script>alert(1)</script> & <b>bold</b>"


def mail(sender: str, subject: str, body: str, mid: str) -> bytes:
    """A plain customer mail to support."""
    head = [
        f"From: {sender}",
        "To: support@dataflow.com",
        f"Subject: {subject}",
        f"Message-ID: <{mid}>",
    ]
    return ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()


def deliver(app: App, *raws: bytes) -> None:
    """Store and process mail as the listener and the worker would."""
    app.ingest(RawInput(raw, Envelope("smtp")) for raw in raws)
    app.process()


@pytest.fixture
def seeded(db_url: str) -> Iterator[App]:
    """Sample customers and tickets, the clock at NOW (T0 + 50 min):

    * 10001 (P0, Pinnacle, received T0 - 3 h): first response 2 h overdue, red;
    * the shipped sample mail at T0, among it 10002 (P0, Harborline): 10 min of 1 h left, amber;
    * 10010 from an unknown sender with an HTML/script subject.
    """
    clock = FixedClock(T0 - dt.timedelta(hours=3))
    settings = Settings.model_validate(
        {"database": {"url": db_url}, "processing": {"parse_workers": 0}}
    )
    app = App(settings, clock)
    app.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    deliver(
        app,
        mail(
            "Samuel <samuel@pinnaclefin.example>",
            "Error 503: Service Unavailable",
            "The whole platform is down.",
            "down@pinnaclefin.example",
        ),
    )
    clock.advance(dt.timedelta(hours=3))
    samples = sorted((resource_path("data") / "sample_mail").glob("*.eml"))
    deliver(app, *(path.read_bytes() for path in samples))
    deliver(app, mail("Mallory <mallory@evil.example>", XSS_SUBJECT, "hi", "xss@evil.example"))
    clock.advance(NOW - T0)
    try:
        yield app
    finally:
        app.close()


@contextlib.contextmanager
def serving(app: App, settings: DashboardSettings) -> Iterator[str]:
    """Run the dashboard through the supervisor (as ``mailproc dashboard`` does) on its own
    loop in a thread; yield its base URL, then stop it as SIGTERM would."""
    supervisor = Supervisor(
        app, Components(listener=None, pollers=False, worker=False, dashboard=settings)
    )
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        task = asyncio.create_task(supervisor.serve(stop))
        while supervisor.dashboard is None or not supervisor.dashboard.port:
            if task.done():
                await task  # raises why it did not start
            await asyncio.sleep(0.01)
        ready.set()
        await task

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as error:  # handed to the test below
            state["error"] = error
            ready.set()

    thread = threading.Thread(target=run, name="dashboard-test", daemon=True)
    thread.start()
    assert ready.wait(20), "the dashboard did not start"
    if "error" in state:
        raise state["error"]
    assert supervisor.dashboard is not None
    try:
        yield f"http://127.0.0.1:{supervisor.dashboard.port}"
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(30)
        assert not thread.is_alive(), "the dashboard did not stop"


@pytest.fixture
def dashboard_url(seeded: App) -> Iterator[str]:
    """The seeded dashboard on a free loopback port, refreshing every second."""
    settings = DashboardSettings(listen="127.0.0.1:0", refresh_s=1)
    with serving(seeded, settings) as url:
        yield url
