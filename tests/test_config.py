"""Settings: defaults, the TOML file, MAILPROC_* overrides, and one clear message per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailproc.config import ConfigError, Settings, load_settings
from mailproc.resources import resource_path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MAILPROC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_without_a_file() -> None:
    settings = load_settings()
    assert settings.database.url == "sqlite:///mailproc.db"
    assert settings.support.addresses == ("support@dataflow.com",)
    assert settings.intake.max_mime_depth == 12


def test_shipped_example_config_equals_the_defaults(tmp_path: Path) -> None:
    example = resource_path("data") / "mailproc.example.toml"
    assert load_settings(example) == Settings()


def test_file_then_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mailproc.toml"
    path.write_text('[database]\nurl = "sqlite:///from-file.db"\n[intake]\nmax_parts = 40\n')
    assert load_settings().database.url == "sqlite:///from-file.db"
    monkeypatch.setenv("MAILPROC_DATABASE_URL", "postgresql://u@127.0.0.1/mp")
    monkeypatch.setenv(
        "MAILPROC_SUPPORT_ADDRESSES", '["Help@DataFlow.com", "billing@dataflow.com"]'
    )
    settings = load_settings()
    assert settings.database.url == "postgresql+psycopg://u@127.0.0.1/mp"
    assert settings.intake.max_parts == 40
    assert settings.support.addresses == ("help@dataflow.com", "billing@dataflow.com")


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text("[processing]\nbatch_size = 7\n")
    monkeypatch.setenv("MAILPROC_CONFIG", str(other))
    assert load_settings().processing.batch_size == 7
    monkeypatch.setenv("MAILPROC_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings()


def test_every_bad_value_is_reported_on_its_own_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[database]\nurl = "mysql://x"\n'
        '[support]\naddresses = ["not an address"]\ndomain = "-bad-"\n'
        "[intake]\nmax_parts = 0\ncolour = 3\n"
    )
    monkeypatch.setenv("MAILPROC_DATABASE_BUSY_TIMEOUT_MS", "soon")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    lines = str(caught.value).splitlines()[1:]
    assert any(line.startswith("  database.url: must start with sqlite") for line in lines)
    assert any(line.startswith("  database.busy_timeout_ms:") for line in lines)
    assert any(
        "support.addresses: 'not an address' is not a valid mail address" in line for line in lines
    )
    assert any("support.domain: '-bad-' is not a valid domain name" in line for line in lines)
    assert any(line.startswith("  intake.max_parts:") for line in lines)
    assert any(line == "  intake.colour: unknown setting" for line in lines)
    assert len(lines) == 6


def test_broken_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[database\nurl=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)
