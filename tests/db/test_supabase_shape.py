"""A Supabase-shaped database: migrations the Supabase CLI applied are verified and recorded, never re-run;
the API roles inherit; members link to one sign-in per e-mail, deterministically; the hook's grants.

Real: fresh databases on the test server. The Supabase CLI is simulated by what it leaves behind: each
migration run and recorded in supabase_migrations.schema_migrations (version, name, statements).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mirage.db.migrate import LEDGER, MigrationError, default_dir, discover, migrate, status
from tests.db.factories import TenantGraph
from tests.db.helpers import act_as, add_auth_user, ensure_auth_users, ensure_role

Conn = psycopg.Connection[Any]
SHAPE = default_dir() / "20261207000400_supabase_shape.sql"


def _supabase_db_reset(conn: Conn, folder: Path) -> None:
    """What `supabase db reset` does with supabase/migrations: run each file, record it in its own ledger."""
    # KNOWN GAP, reported: 20261207000300_metrics_page.sql creates a table in mirage_meta, the schema of
    # Mirage's own migration ledger, without creating the schema; under the Supabase CLI alone it would fail.
    # Applied migrations are never edited, so until a later migration fixes that order, the schema is made here.
    conn.execute("create schema if not exists mirage_meta")
    conn.execute("create schema if not exists supabase_migrations")
    conn.execute(
        "create table if not exists supabase_migrations.schema_migrations"
        " (version text primary key, statements text[], name text)"
    )
    for m in discover(folder):
        text = m.path.read_text(encoding="utf-8")
        conn.execute(text)
        conn.execute(
            "insert into supabase_migrations.schema_migrations (version, statements, name) values (%s, %s, %s)",
            (m.version, [text], m.name.split("_", 1)[1]),
        )
    conn.commit()


def test_migrations_the_supabase_cli_applied_are_verified_and_recorded_not_run_again(empty_database: str) -> None:
    with psycopg.connect(empty_database) as conn:
        _supabase_db_reset(conn, default_dir())
        adopted: list[str] = []
        assert migrate(conn, on_adopt=lambda m: adopted.append(m.name)) == []  # today: type "convo_mode" exists
        assert adopted == [m.name for m in discover()]
        assert status(conn).current
        ledger = conn.execute(f"select name, sha256 from {LEDGER} order by name").fetchall()
    assert ledger == [(m.name, m.sha256) for m in discover()]


def test_a_file_edited_after_the_supabase_cli_applied_it_is_refused(empty_database: str, tmp_path: Path) -> None:
    (tmp_path / "20990101000000_first.sql").write_text("create table public.first (id int);\n")
    with psycopg.connect(empty_database) as conn:
        _supabase_db_reset(conn, tmp_path)
        (tmp_path / "20990101000000_first.sql").write_text("create table public.first (id bigint);\n")
        with pytest.raises(MigrationError, match="the Supabase CLI applied this migration"):
            migrate(conn, tmp_path)
        assert status(conn, tmp_path).applied == []


def test_a_migration_added_after_the_cli_ran_is_applied_by_mirage(empty_database: str, tmp_path: Path) -> None:
    (tmp_path / "20990101000000_first.sql").write_text("create table public.first (id int);\n")
    with psycopg.connect(empty_database) as conn:
        _supabase_db_reset(conn, tmp_path)
        (tmp_path / "20990101000001_second.sql").write_text("create table public.second (id int);\n")
        assert [m.name for m in migrate(conn, tmp_path)] == ["20990101000001_second"]
        assert conn.execute("select to_regclass('public.second') is not null").fetchone() == (True,)


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_api_roles_inherit_like_current_supabase(conn: Conn, role: str) -> None:
    assert conn.execute("select rolinherit from pg_roles where rolname = %s", (role,)).fetchone() == {
        "rolinherit": True
    }


@pytest.mark.parametrize(
    ("sign_ins", "expected"),
    [
        ([("sso", "now() - interval '2 days'", True), ("password", "now()", False)], "password"),
        ([("later", "now()", False), ("earlier", "now() - interval '1 day'", False)], "earlier"),
        ([("unconfirmed", False, False), ("sso", "now()", True)], "sso"),
    ],
    ids=["non-SSO before SSO", "earliest confirmed", "only confirmed ones"],
)
def test_a_member_links_to_one_sign_in_per_email_deterministically(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], sign_ins: list[tuple[str, Any, bool]], expected: str
) -> None:
    a, _ = two_tenants
    ensure_auth_users(conn)
    ids = {name: uuid.uuid4() for name, _, _ in sign_ins}
    for name, confirmed, sso in sign_ins:
        add_auth_user(conn, ids[name], "Duda@Padaria.com.br", confirmed, sso=sso)
    conn.execute(
        "insert into t_users (tenant_id, email, role) values (%s, 'duda@padaria.com.br', 'member')", (a.tenant_id,)
    )
    act_as(conn, "service_role", {"role": "service_role"})
    assert conn.execute("select mirage_private.link_auth_users() as n").fetchone() == {"n": 1}
    row = conn.execute("select auth_user_id from t_users where email = 'duda@padaria.com.br'").fetchone()
    assert row == {"auth_user_id": ids[expected]}


def test_supabase_auth_admin_gets_usage_on_the_hook_schema(conn: Conn) -> None:
    """On Supabase the role exists before migrations run; here it is created in the test's transaction."""
    ensure_role(conn, "supabase_auth_admin")
    conn.execute(SHAPE.read_text(encoding="utf-8"))  # the migration again, now taking its Supabase branch
    row = conn.execute("select has_schema_privilege('supabase_auth_admin', 'public', 'usage') as ok").fetchone()
    assert row == {"ok": True}
    grants = conn.execute(
        "select grantee::regrole::text as who"
        " from aclexplode((select nspacl from pg_namespace where nspname = 'public')) where privilege_type = 'USAGE'"
    ).fetchall()
    assert "supabase_auth_admin" in {g["who"] for g in grants}  # explicitly, not through PUBLIC


def test_the_shape_migration_runs_twice_without_harm(conn: Conn) -> None:
    conn.execute(SHAPE.read_text(encoding="utf-8"))
    conn.execute(SHAPE.read_text(encoding="utf-8"))
    assert conn.execute("select count(*) as n from pg_roles where rolname = 'anon' and rolinherit").fetchone() == {
        "n": 1
    }
