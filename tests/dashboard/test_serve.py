"""The dashboard inside ``mailproc serve`` and alone as ``mailproc dashboard``, as processes."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import urllib.request
from pathlib import Path

from adapters.conftest import to_toml
from adapters.support import free_port, make_message, port_open, run_cli, start_cli, wait_for


def _config(tmp_path: Path, db_url: str, **sections: dict[str, object]) -> Path:
    path = tmp_path / "mailproc.toml"
    path.write_text(to_toml({"database": {"url": db_url}, **sections}))
    return path


def _open_tickets(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/board", timeout=10) as response:
        return int(json.load(response)["open"])


def test_serve_runs_the_dashboard_beside_the_listener(tmp_path: Path, db_url: str) -> None:
    smtp_port, web_port = free_port(), free_port()
    config = _config(
        tmp_path,
        db_url,
        listener={"listen": f"127.0.0.1:{smtp_port}"},
        serve={"pollers": False, "process_interval_s": 0.5},
        dashboard={"enabled": True, "listen": f"127.0.0.1:{web_port}"},
    )
    log = tmp_path / "serve.log"
    process = start_cli(["serve"], config, log)
    try:
        wait_for(lambda: port_open(smtp_port) and port_open(web_port), 20, "serve to listen")
        assert _open_tickets(web_port) == 0
        with smtplib.SMTP("127.0.0.1", smtp_port) as client:
            client.sendmail("a@example.com", ["support@dataflow.com"], make_message(1))
        wait_for(lambda: _open_tickets(web_port) == 1, 20, "the ticket on the board")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    output = log.read_text()
    assert code == 0, output
    assert f"dashboard on http://127.0.0.1:{web_port}/" in output
    assert "mailproc.supervisor: stopped" in output
    assert not port_open(web_port)


def test_dashboard_refuses_a_public_address_without_a_login(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url, dashboard={"listen": "0.0.0.0:8080"})
    completed = run_cli(["dashboard"], config)
    assert completed.returncode == os.EX_CONFIG
    assert "not a loopback address" in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
