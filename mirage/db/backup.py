"""`mirage db backup` / `mirage db restore`: pg_dump and pg_restore around the configured database.

The embedded Postgres is backed up with pgserver's own pg_dump, so the client always matches the server; for
DATABASE_URL the `pg_dump` on PATH is preferred (it must be at least the server's major version), pgserver's is the
fallback. Connection details reach the tools through PG* environment variables, never the command line (where
`ps` would show the password).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from mirage.backends import mask_url
from mirage.errors import MirageError

# conninfo keyword -> libpq environment variable (https://www.postgresql.org/docs/current/libpq-envars.html)
_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


class BackupError(MirageError):
    """A backup or restore could not be made; the message says which step and why (no secrets)."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    seconds: float
    tool: str


@dataclass(frozen=True)
class RestoreResult:
    database: str
    url: str  # secret-bearing: show with mask_url
    seconds: float
    migrations: int
    tenants: int
    messages: int


def _major(version_output: str) -> int:
    """16 from `pg_dump (PostgreSQL) 16.2`; 0 when it cannot be read."""
    match = re.search(r"\) (\d+)", version_output) or re.search(r"(\d+)\.\d+", version_output)
    return int(match.group(1)) if match else 0


def server_major(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("show server_version_num").fetchone()
    except psycopg.Error as e:
        raise BackupError(f"cannot connect to {mask_url(url)}: {str(e).strip().splitlines()[0]}") from e
    return int(str(row[0] if row else 0)) // 10000


def tool(name: str, server: int, *, embedded: bool) -> str:
    """Path of `name` (pg_dump / pg_restore) able to talk to a server of major version `server`.

    Candidates, in order: pgserver's copy for the embedded server, the one on PATH, pgserver's copy. The first
    whose major version is at least the server's wins (pg_dump refuses newer servers).
    """
    from mirage.embedded.postgres import bundled_tool

    bundled = str(bundled_tool(name) or "") or None
    on_path = shutil.which(name)
    candidates = [c for c in ([bundled] if embedded else []) + [on_path, bundled] if c]
    seen = []
    for candidate in dict.fromkeys(candidates):
        try:
            out = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
        except (OSError, subprocess.SubprocessError):
            continue
        major = _major(out.stdout)
        if major >= server:
            return candidate
        seen.append(f"{candidate} ({major})")
    found = f"; found {', '.join(seen)}" if seen else ""
    raise BackupError(
        f"no {name} for PostgreSQL {server} or newer{found}: install the matching client programs "
        f"(apt install postgresql-client-{server})"
    )


def _env_for(url: str) -> dict[str, str]:
    """The process environment plus PG* variables for `url` (unsupported keywords are refused, not dropped)."""
    params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    unknown = sorted(set(params) - set(_ENV))
    if unknown:
        raise BackupError(f"{mask_url(url)}: connection option(s) {', '.join(unknown)} cannot be passed to pg_dump")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({_ENV[k]: v for k, v in params.items()})
    return env


def _run(argv: list[str], url: str, what: str) -> None:
    try:
        done = subprocess.run(argv, env=_env_for(url), capture_output=True, text=True, timeout=3600, check=False)  # noqa: S603
    except (OSError, subprocess.SubprocessError) as e:
        raise BackupError(f"{what}: {e}") from e
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()] or [f"exit code {done.returncode}"]
        raise BackupError(f"{what} failed: {mask_url(lines[-1] if len(lines) < 3 else lines[0])}")


def backup(url: str, path: Path, *, embedded: bool) -> BackupResult:
    """Dump the database at `url` to `path` (pg_dump custom format: compressed, restorable table by table)."""
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pg_dump = tool("pg_dump", server_major(url), embedded=embedded)
    try:
        _run([pg_dump, "--format=custom", "--no-password", f"--file={partial}"], url, "pg_dump")
        os.chmod(partial, 0o600)  # a dump holds every tenant's data (secrets stay encrypted inside it)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(path, path.stat().st_size, time.perf_counter() - started, pg_dump)


def _is_empty(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "select count(*) as n from pg_tables where schemaname in ('public', 'mirage_meta', 'mirage_private')"
    ).fetchone()
    return not (row and int(row["n"] if isinstance(row, dict) else row[0]))


def create_database(server_url: str, name: str) -> str:
    """Create an empty database `name` on the server of `server_url` (refusing an existing one); returns its URL."""
    try:
        with psycopg.connect(server_url, autocommit=True) as admin:
            if admin.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
                raise BackupError(f"database {name} already exists: restore into a new one, or drop it first")
            admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    except psycopg.Error as e:
        raise BackupError(f"create database {name}: {str(e).strip().splitlines()[0]}") from e
    return make_conninfo(server_url, dbname=name)


def restore(url: str, path: Path, *, embedded: bool) -> RestoreResult:
    """Restore the dump at `path` into the database at `url`, which must hold no Mirage tables.

    One transaction (`--single-transaction --exit-on-error`): either everything is restored or nothing is.
    """
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    started = time.perf_counter()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            if not _is_empty(conn):
                raise BackupError(
                    f"{mask_url(url)} already holds Mirage tables: restore into an empty database "
                    "(`mirage db restore FILE --database NEW_NAME` creates one on the same server)"
                )
    except psycopg.Error as e:
        raise BackupError(f"cannot connect to {mask_url(url)}: {str(e).strip().splitlines()[0]}") from e
    pg_restore = tool("pg_restore", server_major(url), embedded=embedded)
    _run(
        [
            pg_restore,
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            f"--dbname={database_name(url)}",
            str(path),
        ],
        url,
        "pg_restore",
    )
    with psycopg.connect(url) as conn:
        counts = conn.execute(
            """select (select count(*) from mirage_meta.schema_migrations),
                      (select count(*) from t_tenants), (select count(*) from t_messages)"""
        ).fetchone() or (0, 0, 0)
    return RestoreResult(database_name(url), url, time.perf_counter() - started, *(int(c) for c in counts))


def database_name(url: str) -> str:
    return str(conninfo_to_dict(url).get("dbname") or "postgres")
