"""A real wheel, installed into a fresh virtualenv, finds its templates, locales, migrations
and data outside the source tree, and its console script works end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_runs_from_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [wheel] = dist.glob("mailproc-*.whl")
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROC_")}
    env["PYTHONPATH"] = ""

    def mailproc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [target / "bin" / "mailproc", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    where = subprocess.run(
        [
            python,
            "-c",
            "import mailproc.resources as r; "
            "print(*(r.resource_path(n) for n in ('templates','locales','migrations','data')))",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all("site-packages" in path and str(ROOT) not in path for path in where), where
    assert mailproc("init", "--sample-data").returncode == 0
    ingested = mailproc("ingest", "--sample")
    assert ingested.returncode == 0, ingested.stderr
    assert "stored 8" in ingested.stdout
    listed = json.loads(mailproc("tickets", "list", "--json").stdout)
    assert len(listed) == 8 and {t["priority"] for t in listed} >= {"P0", "P1"}
    checked = mailproc("templates", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    spanish = mailproc("templates", "render", "acknowledgment", "--locale", "es")
    assert "Gracias" in spanish.stdout
    assert "0003" in mailproc("db", "history").stdout
