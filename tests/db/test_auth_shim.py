"""The plain-Postgres shim behaves like Supabase's auth functions and roles, and never replaces Supabase's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from mirage.db.migrate import default_dir, migrate
from tests.db.helpers import act_as

Conn = psycopg.Connection[Any]
SHIM = default_dir() / "20261130000000_auth_shim.sql"
USER = "6f1b3a52-1c1e-4c43-9a39-4f1a9f1d2b7e"


def _auth(conn: Conn) -> dict[str, Any]:
    row = conn.execute("select auth.jwt() as jwt, auth.uid() as uid, auth.role() as role, auth.email() as email")
    return dict(row.fetchone() or {})


def test_no_claims_means_null_everywhere(conn: Conn) -> None:
    assert _auth(conn) == {"jwt": None, "uid": None, "role": None, "email": None}


def test_claims_come_from_request_jwt_claims(conn: Conn) -> None:
    claims = {"sub": USER, "role": "authenticated", "email": "ana@padaria.com.br", "app.tenant_id": "x"}
    act_as(conn, "authenticated", claims)
    got = _auth(conn)
    assert got["jwt"] == claims
    assert (str(got["uid"]), got["role"], got["email"]) == (USER, "authenticated", "ana@padaria.com.br")


def test_legacy_per_claim_setting_wins_like_supabase(conn: Conn) -> None:
    act_as(conn, "authenticated", {"sub": USER, "role": "authenticated"})
    other = "0b7d2c1e-0000-4000-8000-000000000001"
    conn.execute("select set_config('request.jwt.claim.sub', %s, true)", (other,))
    assert str(_auth(conn)["uid"]) == other


def test_claims_set_locally_are_empty_not_null_after_commit_and_read_as_null(database_url: str) -> None:
    with psycopg.connect(database_url, row_factory=dict_row) as c:
        c.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": USER}),))
        c.commit()
        # what PostgREST documents: after the transaction the setting is '' (not NULL); nullif() handles it
        assert c.execute("select current_setting('request.jwt.claims', true) as s").fetchone() == {"s": ""}
        assert _auth(c) == {"jwt": None, "uid": None, "role": None, "email": None}


@pytest.mark.parametrize(
    ("role", "login", "inherit", "bypassrls"),
    [("anon", False, True, False), ("authenticated", False, True, False), ("service_role", False, True, True)],
)
def test_api_roles_have_supabase_attributes(conn: Conn, role: str, login: bool, inherit: bool, bypassrls: bool) -> None:
    row = conn.execute(
        "select rolcanlogin, rolinherit, rolbypassrls, rolsuper from pg_roles where rolname = %s", (role,)
    ).fetchone()
    assert row == {"rolcanlogin": login, "rolinherit": inherit, "rolbypassrls": bypassrls, "rolsuper": False}


def test_shim_runs_again_without_replacing_anything(conn: Conn) -> None:
    before = conn.execute("select oid, prosrc from pg_proc where pronamespace = 'auth'::regnamespace order by 1")
    before_rows = before.fetchall()
    conn.execute(SHIM.read_text(encoding="utf-8"))
    after = conn.execute("select oid, prosrc from pg_proc where pronamespace = 'auth'::regnamespace order by 1")
    assert after.fetchall() == before_rows
    assert len(before_rows) == 4


def test_migrations_keep_supabase_own_auth_objects(empty_database: str, tmp_path: Path) -> None:
    """On Supabase `auth` and its functions exist (owned by Supabase Auth): the shim must leave them be."""
    with psycopg.connect(empty_database, row_factory=dict_row) as c:
        c.execute("create schema auth")
        c.execute("""create function auth.jwt() returns jsonb language sql stable
                     as $$ select '{"supabase": true}'::jsonb $$""")
        c.commit()
        migrate(c)
        assert c.execute("select auth.jwt() as j").fetchone() == {"j": {"supabase": True}}
        shimmed = c.execute("select count(*) as n from pg_proc where pronamespace = 'auth'::regnamespace").fetchone()
        assert shimmed == {"n": 4}  # the existing jwt() plus the shim's uid(), role(), email()
