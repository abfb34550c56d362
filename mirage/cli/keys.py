"""`mirage keys generate` / `mirage keys rotate`: the Fernet keys (MIRAGE_SECRET_KEYS) that encrypt secrets at rest."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import click

from mirage.cli.base import cli
from mirage.crypto import generate_key, keyring, prepend_local_key
from mirage.i18n import t


@cli.group()
def keys() -> None:
    """Fernet keys that encrypt Evolution tokens, webhook secrets and API keys at rest (MIRAGE_SECRET_KEYS)."""


@keys.command("generate")
@click.option(
    "--write-local",
    is_flag=True,
    help="Prepend the key to the embedded set-up's key file (<state>/secret_keys) instead of only printing it.",
)
def generate(write_local: bool) -> None:
    """Print a new Fernet key on stdout, and on stderr how to put it first in MIRAGE_SECRET_KEYS.

    The first key encrypts and every key decrypts: prepend the new one everywhere Mirage runs, run
    `mirage keys rotate`, then remove the old key.
    """
    key = generate_key()
    if write_local:
        path = prepend_local_key(key)
        click.echo(t("evolution.key_written", path=str(path)), err=True)
        return
    click.echo(key)
    click.echo(t("evolution.key_prepend"), err=True)


@keys.command("rotate")
@click.option("--dry-run", is_flag=True, help="Decrypt and re-encrypt everything, report the counts, change nothing.")
def rotate(dry_run: bool) -> None:
    """Re-encrypt every stored secret under the first key of MIRAGE_SECRET_KEYS, in one transaction.

    Stops without changing anything if any value cannot be decrypted where it is stored.
    """
    from mirage.db.connect import connect
    from mirage.db.keys import rotate_all

    def progress(table: str, rows: Sequence[Any]) -> AbstractContextManager[Iterable[Any]]:
        label = t("evolution.rotate_table", table=table)
        return click.progressbar(rows, label=label, show_pos=True, file=sys.stderr)

    ring = keyring()
    with connect() as conn:
        results = rotate_all(conn, ring, dry_run=dry_run, track=progress)
    for r in results:
        click.echo(t("evolution.rotate_counts", table=r.table, rows=r.rows, values=r.values))
    total = sum(r.values for r in results)
    click.echo(t("evolution.rotate_dry_run" if dry_run else "evolution.rotate_done", values=total, keys=len(ring.keys)))
