"""`mirage keys generate` / `mirage keys rotate`: the Fernet keys (MIRAGE_SECRET_KEYS) that encrypt secrets at rest."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import click
import psycopg
from psycopg import sql

from mirage.cli.base import cli
from mirage.crypto import Keyring, generate_key, keyring, prepend_local_key
from mirage.db.connect import connect
from mirage.i18n import t

# Every ciphertext column is a bytea named <field>_enc; its binding field is the name without `_enc`
# (t_sessions.token_enc -> "token", t_tenant_secrets.value_enc -> "value").
_CIPHERTEXT_COLUMNS = """
    select c.table_name, c.column_name
    from information_schema.columns c
    join information_schema.tables tb on tb.table_schema = c.table_schema and tb.table_name = c.table_name
    where c.table_schema = 'public' and tb.table_type = 'BASE TABLE'
      and c.data_type = 'bytea' and c.column_name like '%\\_enc'
    order by c.table_name, c.ordinal_position
"""


@dataclass
class TableRotation:
    table: str
    columns: list[str]
    rows: int = 0
    values: int = 0


def ciphertext_columns(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    """{table: [column, ...]} for every `*_enc` bytea column in the public schema."""
    out: dict[str, list[str]] = {}
    for row in conn.execute(_CIPHERTEXT_COLUMNS).fetchall():
        out.setdefault(row["table_name"], []).append(row["column_name"])
    return out


def rotate_all(
    conn: psycopg.Connection[Any], ring: Keyring, *, progress: bool = False, dry_run: bool = False
) -> list[TableRotation]:
    """Re-encrypt every ciphertext under the first key, in one transaction (rows locked while it runs).

    Each value is decrypted where it lives (so a value copied to another row stops the rotation with a
    CryptoError and nothing changes) and encrypted again; `dry_run` rolls the transaction back.
    """
    done: list[TableRotation] = []
    try:
        for table, columns in ciphertext_columns(conn).items():
            result = TableRotation(table, columns)
            cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            rows = conn.execute(
                sql.SQL("select id, {} from {} order by id for update").format(cols, sql.Identifier(table))
            ).fetchall()
            with click.progressbar(
                rows,
                label=t("evolution.rotate_table", table=table),
                hidden=not progress,
                show_pos=True,
                file=sys.stderr,
            ) as bar:
                for row in bar:
                    fresh = {
                        c: ring.reencrypt(row[c], table=table, row_id=row["id"], field=c.removesuffix("_enc"))
                        for c in columns
                        if row[c] is not None
                    }
                    if not fresh:
                        continue
                    sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in fresh)
                    conn.execute(
                        sql.SQL("update {} set {} where id = %s").format(sql.Identifier(table), sets),
                        [*fresh.values(), row["id"]],
                    )
                    result.rows += 1
                    result.values += len(fresh)
            done.append(result)
    except BaseException:
        conn.rollback()
        raise
    if dry_run:
        conn.rollback()
    else:
        conn.commit()
    return done


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
    ring = keyring()
    with connect() as conn:
        results = rotate_all(conn, ring, progress=True, dry_run=dry_run)
    for r in results:
        click.echo(t("evolution.rotate_counts", table=r.table, rows=r.rows, values=r.values))
    total = sum(r.values for r in results)
    click.echo(t("evolution.rotate_dry_run" if dry_run else "evolution.rotate_done", values=total, keys=len(ring.keys)))
