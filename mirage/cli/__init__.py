"""The `mirage` command line: one module per command group in this package, registered on import.

What lives here: click commands that parse arguments, call functions of the domain (config, reconcile, db,
jobs, integrations, web) and render their results; errors become messages and exit codes in `base`. What it
may import: everything; nothing imports it (the demo calls the same domain functions instead).

The console script (`main`) imports only the module of the command asked for (`COMMANDS`); importing
`mirage.cli.cli` registers every command (tests, docs). `tests/test_cli_speed.py` checks `COMMANDS` is complete.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

# command -> the modules that define it or its subcommands
COMMANDS: dict[str, tuple[str, ...]] = {
    "apply": ("mirage.cli.plan",),
    "connect": ("mirage.cli.evolution",),
    "contacts": ("mirage.cli.contacts",),
    "cron": ("mirage.cli.runtime",),
    "db": ("mirage.cli.db",),
    "demo": ("mirage.cli.demo",),
    "doctor": ("mirage.cli.doctor",),
    "down": ("mirage.cli.services",),
    "import": ("mirage.cli.plan",),
    "keys": ("mirage.cli.keys",),
    "lint": ("mirage.cli.validate",),
    "numbers": ("mirage.cli.numbers",),
    "optouts": ("mirage.cli.optouts",),
    "plan": ("mirage.cli.plan",),
    "say": ("mirage.cli.text",),
    "schema": ("mirage.cli.validate",),
    "serve": ("mirage.cli.runtime",),
    "simulate": ("mirage.cli.simulate",),
    "sim": ("mirage.cli.evolution", "mirage.cli.text"),
    "status": ("mirage.cli.status",),
    "text": ("mirage.cli.text",),
    "up": ("mirage.cli.services",),
    "validate": ("mirage.cli.validate",),
    "viewers": ("mirage.cli.viewers",),
    "worker": ("mirage.cli.runtime",),
}


def load_all() -> None:
    """Import every command module, registering all commands on the root group."""
    for name in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base"):
        importlib.import_module(f"{__name__}.{name}")


def main() -> None:
    """The console script: `mirage ...`."""
    from mirage.cli.base import cli

    cli.lazy = COMMANDS
    cli.load_all = load_all
    cli(prog_name="mirage")


def __getattr__(name: str) -> Any:
    if name == "cli":  # `from mirage.cli import cli`: the group with every command registered
        from mirage.cli.base import cli

        cli.lazy = COMMANDS
        cli.load_all = load_all
        load_all()
        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["COMMANDS", "cli", "load_all", "main"]
