"""Key rotation: re-encrypt every ciphertext column under the first key of MIRAGE_SECRET_KEYS.

The SQL side of `mirage keys rotate`: every `*_enc` bytea column of the public schema is a MultiFernet
ciphertext bound to (table, row id, field); `rotate_all` decrypts each value where it lives and encrypts it
again, in one transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from mirage.crypto import Keyring

Track = Callable[[str, Sequence[Any]], AbstractContextManager[Iterable[Any]]]

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


def _untracked(table: str, rows: Sequence[Any]) -> AbstractContextManager[Iterable[Any]]:
    return contextlib.nullcontext(rows)


def rotate_all(
    conn: psycopg.Connection[Any], ring: Keyring, *, dry_run: bool = False, track: Track = _untracked
) -> list[TableRotation]:
    """Re-encrypt every ciphertext under the first key, in one transaction (rows locked while it runs).

    Each value is decrypted where it lives (so a value copied to another row stops the rotation with a
    CryptoError and nothing changes) and encrypted again; `dry_run` rolls the transaction back. `track`
    wraps each table's rows (the CLI shows a progress bar with it).
    """
    done: list[TableRotation] = []
    try:
        for table, columns in ciphertext_columns(conn).items():
            result = TableRotation(table, columns)
            cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            rows = conn.execute(
                sql.SQL("select id, {} from {} order by id for update").format(cols, sql.Identifier(table))
            ).fetchall()
            with track(table, rows) as bar:
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
