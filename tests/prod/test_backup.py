"""The restore drill: a database with applied tenants and messages is dumped with `mirage db backup`, restored with
`mirage db restore --database NEW` on the same server, and the restored copy plans as `No changes.` with every
message there, byte for byte.

Real: the test session's Postgres (pgserver's pg_dump / pg_restore, matching the server), its Redis (apply enqueues
its effects), the CLI in process.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from psycopg.rows import dict_row

from mirage.db.scratch import create_database, database_url_for, drop_database
from mirage.settings import get_settings
from tests.reconcile.helpers import mirage

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = (
    "select id, tenant_id, direction::text, status::text, body, meta, from_jid, created_at from t_messages order by id"
)


@pytest.fixture
def source(server_url: str, redis: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated database of its own, with the example tenants applied and messages written, as DATABASE_URL."""
    from mirage.crypto import generate_key

    name = f"mirage_drill_src_{uuid.uuid4().hex[:8]}"
    url = create_database(server_url, name)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("MIRAGE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("EVOLUTION_API_KEY", "evo-drill-key")  # the example tenants reference it
    get_settings.cache_clear()
    applied = mirage("apply", ROOT / "tenants.d", "--yes")
    assert applied.exit_code == 0, applied.output
    with psycopg.connect(url, autocommit=True) as conn:
        tenants = [r[0] for r in conn.execute("select id from t_tenants order by slug").fetchall()]
        for i in range(50):
            conn.execute(
                "insert into t_messages (tenant_id, direction, status, body, meta, from_jid) "
                "values (%s, %s, %s, %s, %s::jsonb, %s)",
                (
                    tenants[i % len(tenants)],
                    "out" if i % 2 else "in",
                    "read" if i % 2 else "received",
                    f"Bom dia {i}! Fica com Deus 🙏 kkkk",
                    '{"app_origin": "bot"}' if i % 2 else "{}",
                    f"55119876500{i:02d}@s.whatsapp.net",
                ),
            )
    yield url
    drop_database(server_url, name)


def _rows(url: str, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return list(conn.execute(query).fetchall())


def test_restore_drill_backup_restore_into_a_new_database_plans_no_changes_with_every_message(
    source: str, server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "drill.dump"
    backed_up = mirage("db", "backup", dump)
    assert backed_up.exit_code == 0, backed_up.output
    assert "Backup written" in backed_up.stdout and dump.is_file()
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    target = f"mirage_drill_dst_{uuid.uuid4().hex[:8]}"
    try:
        restored = mirage("db", "restore", dump, "--database", target)
        assert restored.exit_code == 0, restored.output
        assert f"into database {target}" in restored.stdout and "2 tenant(s), 50 message(s)" in restored.stdout
        url = database_url_for(server_url, target)
        monkeypatch.setenv("DATABASE_URL", url)
        get_settings.cache_clear()
        status = mirage("db", "status")
        assert status.exit_code == 0 and "0 pending, 0 edited, 0 missing" in status.stdout, status.output
        plan = mirage("plan", ROOT / "tenants.d", "--detailed-exitcode")
        assert plan.exit_code == 0, plan.output
        # the configuration is identical; the runtime line that may follow is about provisioning jobs, not rows
        assert plan.stdout.strip().splitlines()[0] == "No changes. The database matches the YAML."
        assert _rows(url, MESSAGES) == _rows(source, MESSAGES)
        assert len(_rows(url, MESSAGES)) == 50
        # row level security came back with the tables
        unforced = "select count(*) as n from pg_class where relname like 't\\_%' and relkind = 'r'"
        forced = _rows(url, unforced + " and not relforcerowsecurity")
        assert forced == [{"n": 0}]
    finally:
        drop_database(server_url, target)


def test_restore_refuses_a_database_that_already_holds_mirage_tables(source: str, tmp_path: Path) -> None:
    dump = tmp_path / "x.dump"
    assert mirage("db", "backup", dump).exit_code == 0
    result = mirage("db", "restore", dump)  # into DATABASE_URL, the source itself
    assert result.exit_code == 1
    assert "already holds Mirage tables" in result.output
    assert len(_rows(source, MESSAGES)) == 50  # untouched


def test_restore_refuses_an_existing_database_name_and_backup_never_prints_the_password(
    source: str, tmp_path: Path
) -> None:
    dump = tmp_path / "y.dump"
    result = mirage("db", "backup", dump)
    name = psycopg.conninfo.conninfo_to_dict(os.environ["DATABASE_URL"])["dbname"]
    refused = mirage("db", "restore", dump, "--database", str(name))
    assert refused.exit_code == 1 and "already exists" in refused.output
    password = psycopg.conninfo.conninfo_to_dict(os.environ["DATABASE_URL"]).get("password")
    if password:
        assert str(password) not in result.output + refused.output
