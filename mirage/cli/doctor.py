"""`mirage doctor`: one line per service and integration, OK / WARN / FAIL."""

from __future__ import annotations

import json

import click

from mirage.cli.base import cli
from mirage.doctor import Level, run_checks
from mirage.settings import get_settings

_COLOURS = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "red"}


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON document.")
def doctor(as_json: bool) -> None:
    """Check Postgres, Redis, migrations, secret keys and the optional integrations.

    Exits 1 when any check FAILs (for example Postgres cannot be reached); WARN lines do not fail.
    """
    checks = run_checks(get_settings())
    if as_json:
        click.echo(json.dumps({"checks": [c.as_dict() for c in checks]}, indent=2, default=str))
    else:
        for c in checks:
            click.echo(f"{click.style(f'{c.level.value:<4}', fg=_COLOURS[c.level])}  {c.name:<12} {c.summary}")
    if any(c.level is Level.FAIL for c in checks):
        raise SystemExit(1)
