"""The ``mailproc`` command line: one module per command group, registered in ``root``."""

from mailproc.cli.root import cli, main

__all__ = ["cli", "main"]
