"""The shipped example config documents every setting, and `mailproc init` writes it whole."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from mailproc.cli.root import cli
from mailproc.config import Settings, load_settings
from mailproc.core.catalog import _CatalogData
from mailproc.core.classify import _ClassifyConfig, _RuleData
from mailproc.core.sla import _SlaConfig
from mailproc.resources import resource_path

EXAMPLE = resource_path("data") / "mailproc.example.toml"
# The free-form sections: checked by the core's own models, documented key by key in comments.
FREE_FORM: dict[str, type[BaseModel]] = {
    "classify": _ClassifyConfig,
    "sla": _SlaConfig,
    "catalog": _CatalogData,
}
NESTED_FREE_FORM: dict[str, type[BaseModel]] = {"classify.rules": _RuleData}


def _blocks(text: str) -> dict[str, str]:
    """The text under each uncommented ``[section]`` header, by section name."""
    blocks: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        header = re.match(r"^\[([a-z_.]+)\]\s*$", line)
        if header:
            current = header[1]
            blocks[current] = ""
        else:
            blocks[current] = blocks.get(current, "") + line + "\n"
    return blocks


def _documented(text: str, block: str, section: str, key: str) -> bool:
    """A key is documented when it is set (or shown commented out) in its section, or has its
    own (possibly commented) ``[section.key]`` / ``[[section.key]]`` table."""
    if re.search(rf"^#?\s*{re.escape(key)}\s*=", block, re.MULTILINE):
        return True
    table = rf"^#?\s*\[\[?{re.escape(section)}\.{re.escape(key)}[\].]"
    return re.search(table, text, re.MULTILINE) is not None


def _model_list(annotation: Any) -> type[BaseModel] | None:
    """The model of a ``tuple[Model, ...]`` field (agents, mailboxes), else None."""
    if get_origin(annotation) is tuple:
        inner = get_args(annotation)[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return None


def missing_from_example(text: str) -> list[str]:
    """Every settings section and field the example does not document."""
    data = tomllib.loads(text)
    blocks = _blocks(text)
    missing: list[str] = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if section not in data or section not in blocks:
            missing.append(f"[{section}]")
            continue
        if section in FREE_FORM:
            for key in FREE_FORM[section].model_fields:
                if not _documented(text, blocks[section], section, key):
                    missing.append(f"{section}.{key}")
            continue
        assert isinstance(model, type) and issubclass(model, BaseModel)
        for key, key_field in model.model_fields.items():
            nested = _model_list(key_field.annotation)
            if nested is None:
                if key not in data[section]:
                    missing.append(f"{section}.{key}")
                continue
            if not _documented(text, blocks[section], section, key):
                missing.append(f"{section}.{key}")
            for inner in nested.model_fields:
                if not _documented(text, blocks[section], section, inner):
                    missing.append(f"{section}.{key}[].{inner}")
    for path, model in NESTED_FREE_FORM.items():
        section = path.partition(".")[0]
        for key in model.model_fields:
            if not _documented(text, blocks.get(section, ""), section, key):
                missing.append(f"{path}[].{key}")
    return missing


def test_the_example_documents_every_section_and_field() -> None:
    assert missing_from_example(EXAMPLE.read_text("utf-8")) == []


@pytest.mark.parametrize(
    ("cut", "reported"),
    [
        ("timeout_s = 30\n\n[serve]", "relay.timeout_s"),  # a field of a section
        ("[auto_reply]\n", "[auto_reply]"),  # a whole section header
        ("# triage_within_minutes = 30 ", "classify.triage_within_minutes"),  # free-form key
        ('# roles = ["support_manager"]\n', "identity.agents[].roles"),  # an agent's field
        ("# http = [502, 503]", "classify.rules[].http"),  # a rule's field
    ],
)
def test_the_check_names_what_is_missing(cut: str, reported: str) -> None:
    text = EXAMPLE.read_text("utf-8")
    assert cut in text
    shortened = text.replace(cut, "[serve]" if cut.endswith("[serve]") else "", 1)
    assert reported in missing_from_example(shortened)


def test_init_writes_the_whole_example_which_loads_as_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("MAILPROC_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "mailproc.toml").read_text("utf-8")
    assert written == EXAMPLE.read_text("utf-8")
    assert missing_from_example(written) == []
    assert load_settings(tmp_path / "mailproc.toml") == Settings()


@pytest.mark.parametrize("section", ["identity", "classify", "sla", "catalog"])
def test_the_commented_examples_are_valid_settings(section: str) -> None:
    """Uncommented, the example lines of a section (an agent, a rule, SLA targets, a catalog
    override) are settings that load."""
    block = _blocks(EXAMPLE.read_text("utf-8"))[section]
    uncommented = re.sub(r"^# (?=[a-z_]+ = |\[)", "", block, flags=re.MULTILINE)
    values = tomllib.loads(uncommented.replace(f"[{section}.", "["))
    assert values, block
    loaded = Settings.model_validate({section: values})
    assert loaded != Settings()
