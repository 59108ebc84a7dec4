"""Take docs/dashboard.png: a seeded dashboard in headless Chromium (Debian's /usr/bin/chromium).

Usage: python benchmarks/dashboard_screenshot.py [--out docs/dashboard.png] [--open 40]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import threading
from pathlib import Path

from bench_board import NOW, seed

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.config_dashboard import DashboardSettings
from mailproc.supervisor import Components, Supervisor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    parser.add_argument("--open", type=int, default=40)
    parser.add_argument("--history", type=int, default=700)
    parser.add_argument("--size", default="1400,1350")
    parser.add_argument("--seed", type=int, default=3, help="Of the random ticket mix.")
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="dashboard-shot-")) / "shot.db"
    settings = Settings.model_validate(
        {"database": {"url": f"sqlite:///{path}"}, "processing": {"parse_workers": 0}}
    )
    app = App(settings, FixedClock(NOW))
    app.upgrade_database()
    seed(app, args.open, args.history, NOW, args.seed)
    dashboard = DashboardSettings(listen="127.0.0.1:0")
    supervisor = Supervisor(
        app, Components(listener=None, pollers=False, worker=False, dashboard=dashboard)
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(supervisor.serve(stop),))
    thread.start()
    try:
        while supervisor.dashboard is None or not supervisor.dashboard.port:
            if not thread.is_alive():
                raise SystemExit("the dashboard did not start")
            thread.join(0.05)
        url = f"http://127.0.0.1:{supervisor.dashboard.port}/"
        subprocess.run(
            [
                "/usr/bin/chromium",
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--window-size={args.size}",
                f"--screenshot={args.out.resolve()}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        app.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
