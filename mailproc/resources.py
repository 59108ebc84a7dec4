"""Locate shipped resource folders (templates, locales, migrations, data) in checkout or wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_path(name: str) -> Path:
    """Return the folder ``name`` shipped with mailproc.

    An installed wheel carries it inside the package (``mailproc/<name>``); a source
    checkout or an editable install keeps it at the repository top level.
    """
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"mailproc resource folder {name!r} not found next to {_PACKAGE_DIR}")
