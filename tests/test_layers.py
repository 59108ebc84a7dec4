"""The package's shape: layers import only downwards, no import circle, no oversized module.

Layers, lowest first: core → foundation (config, config_transport, errors, clock, resources,
runtime, workers) → store → the application tier (intake, processing, workflows, outbound, tickets,
customers, adapters, reports, kb, dashboard) → app → supervisor → cli. A module may import its
own layer or lower.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import mailproc

PACKAGE = Path(mailproc.__file__).parent
MAX_LINES = 500
LAYERS = (
    ("core",),
    (
        "config",
        "config_transport",
        "config_dashboard",
        "passwords",
        "errors",
        "clock",
        "resources",
        "runtime",
        "workers",
    ),
    ("store",),
    (
        "intake",
        "processing",
        "workflows",
        "outbound",
        "tickets",
        "customers",
        "adapters",
        "reports",
        "kb",
        "dashboard",
    ),
    ("app",),
    ("supervisor", "doctor"),
    ("cli",),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The package modules ``path`` imports, at any level of the file."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield candidate if candidate in modules else node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {target for target in _imports(path, modules) if target in modules} - {name}
        for name, path in modules.items()
    }


def _rank(module: str) -> int | None:
    parts = module.split(".")
    return RANK.get(parts[1]) if len(parts) > 1 else None


def test_every_module_belongs_to_a_layer() -> None:
    assert [m for m in _graph() if m != "mailproc" and _rank(m) is None] == []


def test_no_module_imports_from_a_layer_above_it() -> None:
    upward = [
        f"{module} → {target}"
        for module, targets in _graph().items()
        for target in targets
        if module != "mailproc" and (_rank(target) or 0) > (_rank(module) or 0)
    ]
    assert upward == []


def test_there_is_no_import_circle() -> None:
    graph = _graph()
    # a package's __init__ importing its own submodules is not a circle of behaviour
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in edges[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert circles == []


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {name: len(path.read_text("utf-8").splitlines()) for name, path in _modules().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_architecture_table_of_where_a_change_goes_names_files_that_exist() -> None:
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text("utf-8")
    table = text.split("## Where a change goes", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`((?:mailproc|tests|templates|locales|migrations)/[^`]*?)`", table)
    assert len(named) >= 10
    for path in named:
        concrete = path.split("<", 1)[0].split("{", 1)[0]  # a pattern's fixed part must exist
        assert (PACKAGE.parent / concrete).exists(), path
