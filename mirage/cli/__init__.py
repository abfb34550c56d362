"""The `mirage` command line: one module per command group in this package, registered on import."""

from __future__ import annotations

import importlib
import pkgutil

from mirage.cli.base import cli, main

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base"):
    importlib.import_module(f"{__name__}.{_mod}")

__all__ = ["cli", "main"]
