"""The command line package's layering: command modules never import each other or the root."""

from __future__ import annotations

import ast
from pathlib import Path

import mailproc.cli

PACKAGE = Path(mailproc.cli.__file__).parent
SHARED = {"mailproc.cli.errors", "mailproc.cli.context"}


def _cli_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    return {name for name in found if name == "mailproc.cli" or name.startswith("mailproc.cli.")}


def test_command_modules_import_only_errors_and_context() -> None:
    for path in PACKAGE.glob("*.py"):
        imported = _cli_imports(path)
        if path.stem == "__init__":
            assert imported == {"mailproc.cli.root"}
        elif path.stem == "root":
            assert "mailproc.cli.root" not in imported and "mailproc.cli" not in imported
        elif path.stem in {"errors", "context"}:
            assert imported == set(), path.name
        else:
            assert imported <= SHARED, f"{path.name} imports {imported - SHARED}"


def test_nothing_outside_the_package_imports_it() -> None:
    for path in PACKAGE.parent.rglob("*.py"):
        if PACKAGE not in path.parents:
            assert _cli_imports(path) == set(), path
