"""The migration runner: applies the migrations (supabase/migrations or the wheel's copy) in order, checksummed."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from mirage.errors import MirageError

NAME = re.compile(r"^(\d{14})_([a-z0-9_]+)\.sql$")
LOCK_KEY = 0x6D6972_6167  # "mirag": serialises concurrent migrators
LEDGER = "mirage_meta.schema_migrations"
# What the Supabase CLI records (`supabase db reset` / `db push` / `migration up`): version, name, statements.
SUPABASE_LEDGER = "supabase_migrations.schema_migrations"
_SPACE = re.compile(r"\s+")


class MigrationError(MirageError):
    """The migrations folder and the database disagree in a way that must not be applied over."""


@dataclass(frozen=True)
class Migration:
    name: str
    path: Path
    sha256: str

    @property
    def version(self) -> str:
        return self.name.split("_", 1)[0]


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[str]
    pending: list[Migration]
    edited: list[str]  # applied, but the file's checksum changed since
    missing: list[str]  # applied, but the file is gone

    @property
    def current(self) -> bool:
        return not self.pending and not self.edited


def default_dir() -> Path:
    """`supabase/migrations` of the checkout this package runs from, else the copy inside the wheel."""
    from mirage.resources import migrations_dir

    return migrations_dir()


def discover(folder: Path | None = None) -> list[Migration]:
    """The migration files of `folder`, sorted by name; a badly named .sql file is an error."""
    folder = folder or default_dir()
    if not folder.is_dir():
        raise MigrationError(f"{folder}: migrations folder not found")
    out = []
    for path in sorted(folder.glob("*.sql")):
        if not NAME.match(path.name):
            raise MigrationError(f"{path}: migration names must look like YYYYMMDDHHMMSS_name.sql")
        out.append(Migration(path.stem, path, hashlib.sha256(path.read_bytes()).hexdigest()))
    return out


def _ensure_ledger(conn: psycopg.Connection[Any]) -> None:
    conn.execute("create schema if not exists mirage_meta")
    conn.execute(
        f"""create table if not exists {LEDGER} (
              name text primary key,
              sha256 text not null,
              applied_at timestamptz not null default now(),
              duration_ms integer not null
            )"""
    )


def _applied(conn: psycopg.Connection[Any]) -> dict[str, str]:
    cur = conn.cursor(row_factory=tuple_row)
    (exists,) = cur.execute("select to_regclass(%s) is not null", (LEDGER,)).fetchone() or (False,)
    if not exists:
        return {}
    return dict(cur.execute(f"select name, sha256 from {LEDGER} order by name").fetchall())


def _supabase_recorded(conn: psycopg.Connection[Any]) -> dict[str, list[str] | None]:
    """version -> statements of the migrations the Supabase CLI applied to this database ({} without its ledger)."""
    cur = conn.cursor(row_factory=tuple_row)
    (exists,) = cur.execute("select to_regclass(%s) is not null", (SUPABASE_LEDGER,)).fetchone() or (False,)
    if not exists:
        return {}
    has_statements = cur.execute(
        "select exists (select 1 from pg_attribute where attrelid = %s::regclass and attname = 'statements'"
        " and not attisdropped)",
        (SUPABASE_LEDGER,),
    ).fetchone()
    column = "statements" if has_statements and has_statements[0] else "null::text[]"
    rows = cur.execute(f"select version, {column} from {SUPABASE_LEDGER}").fetchall()
    return {str(version): list(statements) if statements is not None else None for version, statements in rows}


def _normal(sql: str) -> str:
    return _SPACE.sub(" ", sql).strip().rstrip(";").strip()


def verify_recorded(m: Migration, statements: list[str] | None) -> None:
    """A migration the Supabase CLI applied is adopted only if its file still holds every statement it ran."""
    text = _normal(m.path.read_text(encoding="utf-8"))
    changed = [s for s in statements or () if _normal(s) and _normal(s) not in text]
    if changed:
        first = _normal(changed[0])[:80]
        raise MigrationError(
            f"{m.path}: the Supabase CLI applied this migration, but the file no longer holds what it ran "
            f"({len(changed)} statement(s) differ, the first: {first!r}); restore the file and put the change "
            "in a new migration"
        )


def _where(m: Migration, e: psycopg.Error) -> str:
    """`path:line:col` of the failing statement when Postgres reports a position, else the path."""
    pos = getattr(getattr(e, "diag", None), "statement_position", None)
    if not pos:
        return str(m.path)
    before = m.path.read_text(encoding="utf-8")[: int(pos) - 1]
    return f"{m.path}:{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"


def status(conn: psycopg.Connection[Any], folder: Path | None = None) -> MigrationStatus:
    """Compare the folder with the ledger, without changing anything."""
    files = discover(folder)
    applied = _applied(conn)
    by_name = {m.name: m for m in files}
    if not conn.autocommit:
        conn.rollback()  # status only reads; leave no transaction open
    return MigrationStatus(
        applied=sorted(applied),
        pending=[m for m in files if m.name not in applied],
        edited=sorted(n for n, sha in applied.items() if n in by_name and by_name[n].sha256 != sha),
        missing=sorted(n for n in applied if n not in by_name),
    )


def migrate(
    conn: psycopg.Connection[Any],
    folder: Path | None = None,
    progress: Callable[[Migration, float], None] | None = None,
    on_adopt: Callable[[Migration], None] | None = None,
) -> list[Migration]:
    """Apply pending migrations in order, each in its own transaction; returns what was applied.

    Refuses (applying nothing) when a file that was already applied has been edited. Concurrent
    callers serialise on an advisory lock, so two processes starting together apply each file once.
    A migration the Supabase CLI already applied (`supabase db reset` records it in
    supabase_migrations.schema_migrations) is verified against the file and recorded, not run again.
    """
    if conn.autocommit:
        raise MigrationError("migrate needs a connection with autocommit off")
    conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
    conn.commit()
    try:
        st = status(conn, folder)
        if st.edited:
            raise MigrationError(
                "refusing to migrate: already-applied migration files were edited: "
                + ", ".join(st.edited)
                + " (add a new migration instead of changing an applied one)"
            )
        done = []
        recorded = _supabase_recorded(conn)
        conn.rollback()
        for m in st.pending:
            if m.version in recorded:
                verify_recorded(m, recorded[m.version])
                with conn.transaction():
                    _ensure_ledger(conn)
                    conn.execute(
                        f"insert into {LEDGER} (name, sha256, duration_ms) values (%s, %s, 0)", (m.name, m.sha256)
                    )
                if on_adopt:
                    on_adopt(m)
                continue
            started = time.perf_counter()
            try:
                with conn.transaction():
                    _ensure_ledger(conn)
                    conn.execute(m.path.read_text(encoding="utf-8"))
                    elapsed_ms = int((time.perf_counter() - started) * 1000)
                    conn.execute(
                        f"insert into {LEDGER} (name, sha256, duration_ms) values (%s, %s, %s)",
                        (m.name, m.sha256, elapsed_ms),
                    )
            except psycopg.Error as e:
                raise MigrationError(f"{_where(m, e)}: {str(e).strip().splitlines()[0]}; nothing of it applied") from e
            done.append(m)
            if progress:
                progress(m, time.perf_counter() - started)
        return done
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
        conn.commit()
