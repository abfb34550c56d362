"""The migration runner and `mirage db migrate|status|refresh-metrics`, on brand-new databases."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.rows import dict_row

from mirage.cli import cli
from mirage.db.migrate import MigrationError, default_dir, discover, migrate, status

ALL = [m.name for m in discover()]


def _cli(url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("DATABASE_URL", url)
    return CliRunner().invoke(cli, ["--lang", "en", "db", *args])


def _tables(url: str) -> set[str]:
    with psycopg.connect(url, row_factory=dict_row) as c:
        return {r["tablename"] for r in c.execute("select tablename from pg_tables where schemaname = 'public'")}


def test_migrations_apply_from_empty_and_a_second_run_is_a_no_op(empty_database: str) -> None:
    with psycopg.connect(empty_database) as conn:
        assert [m.name for m in migrate(conn)] == ALL
        assert status(conn).current
        assert migrate(conn) == []
        ledger = conn.execute("select name, sha256 from mirage_meta.schema_migrations order by name").fetchall()
    assert ledger == [(m.name, m.sha256) for m in discover()]


def test_migrations_added_after_the_schema_was_applied_still_secure_every_table(
    empty_database: str, tmp_path: Path
) -> None:
    """A database migrated before the shim and RLS files existed gets them later, out of name order."""
    (tmp_path / "schema").mkdir()
    shutil.copy(default_dir() / "20261130000100_schema.sql", tmp_path / "schema")
    with psycopg.connect(empty_database, row_factory=dict_row) as conn:
        migrate(conn, tmp_path / "schema")
        assert [m.name for m in migrate(conn)] == [n for n in ALL if n != "20261130000100_schema"]
        assert conn.execute("select * from mirage_private.rls_gaps()").fetchall() == []


def test_edited_applied_migration_is_refused_and_nothing_is_applied(empty_database: str, tmp_path: Path) -> None:
    (tmp_path / "20990101000000_first.sql").write_text("create table public.first (id int);\n")
    with psycopg.connect(empty_database) as conn:
        migrate(conn, tmp_path)
    (tmp_path / "20990101000000_first.sql").write_text("create table public.first (id bigint);\n")
    (tmp_path / "20990101000001_second.sql").write_text("create table public.second (id int);\n")
    with psycopg.connect(empty_database) as conn, pytest.raises(MigrationError) as e:
        migrate(conn, tmp_path)
    assert "20990101000000_first" in str(e.value) and "edited" in str(e.value)
    assert _tables(empty_database) == {"first"}


def test_a_failing_migration_applies_nothing_of_itself_and_says_where(empty_database: str, tmp_path: Path) -> None:
    (tmp_path / "20990101000000_broken.sql").write_text("create table public.half (id int);\nselect nope from;\n")
    with psycopg.connect(empty_database) as conn, pytest.raises(MigrationError, match=r"_broken\.sql:2:\d+: .*nothing"):
        migrate(conn, tmp_path)
    assert _tables(empty_database) == set()


def test_db_migrate_prints_each_file_with_its_time_then_nothing_to_do(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _cli(empty_database, monkeypatch, "migrate")
    assert first.exit_code == 0, first.output
    applied = re.findall(r"^applied (\S+) \((\d+) ms\)$", first.output, re.M)
    assert [name for name, _ in applied] == ALL
    assert f"{len(ALL)} migration(s) applied" in first.output
    second = _cli(empty_database, monkeypatch, "migrate")
    assert second.exit_code == 0
    assert second.output.strip() == f"up to date: {len(ALL)} migration(s) applied, none pending"


def test_db_status_lists_applied_pending_and_edited_and_exits_1_when_edited(
    empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(default_dir(), folder)
    pending = _cli(empty_database, monkeypatch, "status", "--dir", str(folder))
    assert pending.exit_code == 0
    assert re.findall(r"^pending\s+(\S+)$", pending.output, re.M) == ALL

    assert _cli(empty_database, monkeypatch, "migrate", "--dir", str(folder)).exit_code == 0
    edited = folder / f"{ALL[-1]}.sql"
    edited.write_text(edited.read_text() + "\n-- edited after it was applied\n")
    result = _cli(empty_database, monkeypatch, "status", "--dir", str(folder), "--json")
    assert result.exit_code == 1
    states = {m["name"]: m["state"] for m in json.loads(result.stdout)["migrations"]}
    assert states == {name: "edited" if name == ALL[-1] else "applied" for name in ALL}

    refused = _cli(empty_database, monkeypatch, "migrate", "--dir", str(folder))
    assert refused.exit_code == 1
    assert "refusing to migrate" in refused.output and ALL[-1] in refused.output


def test_db_refresh_metrics_refreshes_every_view(empty_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _cli(empty_database, monkeypatch, "migrate").exit_code == 0
    result = _cli(empty_database, monkeypatch, "refresh-metrics")
    assert result.exit_code == 0, result.output
    assert re.findall(r"^refreshed (\S+) \(\d+ ms\)$", result.output, re.M) == [
        "mv_stats_messages",
        "mv_number_stats",
        "mv_page_facts",
    ]


def test_seed_runs_on_a_migrated_database(conn: psycopg.Connection[Any]) -> None:
    conn.execute((default_dir().parent / "seed.sql").read_text(encoding="utf-8"))
