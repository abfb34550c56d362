"""The catalog holds the line: every relation in public is behind row level security, in the documented way.

`mirage_private.rls_gaps()` is the check (it lists every way past RLS); these tests show it is empty on
the migrated schema and that it flags a table created without RLS, which is how a new migration that
forgets RLS fails CI.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.db.factories import TENANT_TABLES, TenantGraph, tenant_column
from tests.db.helpers import INSERT_ONLY, SENSITIVE, SERVICE_ONLY, act_as, attempt, member, row_as_json

Conn = psycopg.Connection[Any]


def _gaps(conn: Conn, relation: str | None = None) -> list[tuple[str, str]]:
    rows = conn.execute("select relation, problem from mirage_private.rls_gaps()").fetchall()
    return [(r["relation"], r["problem"]) for r in rows if relation is None or r["relation"] == relation]


def _public_tables(conn: Conn) -> list[str]:
    rows = conn.execute(
        "select relname from pg_class where relnamespace = 'public'::regnamespace and relkind in ('r', 'p')"
    ).fetchall()
    return sorted(r["relname"] for r in rows)


def test_every_relation_in_public_is_behind_row_level_security(conn: Conn) -> None:
    assert _gaps(conn) == []


def test_rls_check_flags_a_table_created_without_row_level_security(conn: Conn) -> None:
    conn.execute("create table public.t_forgotten (id uuid primary key, tenant_id uuid not null)")
    assert _gaps(conn, "t_forgotten") == [
        ("t_forgotten", "anon may TRUNCATE it, which row level security does not govern"),
        ("t_forgotten", "authenticated may TRUNCATE it, which row level security does not govern"),
        ("t_forgotten", "row level security is not enabled"),
        ("t_forgotten", "row level security is not forced (the owner would bypass it)"),
    ]


def test_rls_check_flags_row_level_security_enabled_but_not_forced(conn: Conn) -> None:
    conn.execute("create table public.t_half (id uuid primary key, tenant_id uuid not null)")
    conn.execute("alter table public.t_half enable row level security")
    conn.execute("revoke truncate on public.t_half from anon, authenticated")
    assert _gaps(conn, "t_half") == [("t_half", "row level security is not forced (the owner would bypass it)")]


def test_secure_table_gives_a_new_table_the_whole_model(conn: Conn) -> None:
    conn.execute("create table public.t_new (id uuid primary key, tenant_id uuid not null)")
    conn.execute("select mirage_private.secure_table('public.t_new', sensitive => true)")
    assert _gaps(conn, "t_new") == []
    policies = conn.execute("select policyname, permissive from pg_policies where tablename = 't_new'").fetchall()
    assert {(p["policyname"], p["permissive"]) for p in policies} == {
        ("tenant_read", "PERMISSIVE"),
        ("tenant_admin_insert", "PERMISSIVE"),
        ("tenant_admin_update", "PERMISSIVE"),
        ("tenant_admin_delete", "PERMISSIVE"),
        ("sensitive_needs_aal2", "RESTRICTIVE"),
    }


def test_secure_table_refuses_a_table_without_a_tenant_column(conn: Conn) -> None:
    conn.execute("create table public.t_global (id uuid primary key)")
    with pytest.raises(psycopg.errors.RaiseException, match="no column tenant_id"):
        conn.execute("select mirage_private.secure_table('public.t_global')")


@pytest.mark.parametrize(
    ("ddl", "relation", "problem"),
    [
        (
            "create view public.v_leak as select * from public.t_messages",
            "v_leak",
            "authenticated may read this view, which runs with its owner's rights (set security_invoker = true)",
        ),
        (
            "create materialized view public.mv_leak as select tenant_id, count(*) from public.t_messages group by 1",
            "mv_leak",
            "authenticated may read this materialized view, which cannot have row level security",
        ),
        (
            "create policy p_meta on public.t_numbers for select to authenticated "
            "using ((auth.jwt() -> 'user_metadata' ->> 'tenant_id')::uuid = tenant_id)",
            "t_numbers",
            "policy p_meta reads user_metadata, which users can edit themselves",
        ),
        (
            "create function public.all_numbers() returns setof public.t_numbers language sql security definer "
            "set search_path to '' as $$ select * from public.t_numbers $$",
            "all_numbers()",
            "anon may execute this SECURITY DEFINER function, which runs past RLS",
        ),
    ],
    ids=["definer-view", "materialized-view", "user-metadata-policy", "definer-function"],
)
def test_rls_check_flags_other_ways_past_row_level_security(conn: Conn, ddl: str, relation: str, problem: str) -> None:
    conn.execute(ddl)
    assert problem in [p for _, p in _gaps(conn, relation)]


def test_rls_check_accepts_a_security_invoker_view(conn: Conn) -> None:
    conn.execute("create view public.v_ok with (security_invoker = on) as select * from public.t_messages")
    assert _gaps(conn, "v_ok") == []


def test_every_table_in_public_is_tenant_scoped_and_covered_by_the_factory(conn: Conn) -> None:
    tables = _public_tables(conn)
    assert tables == sorted(TENANT_TABLES), "a table was added or removed: update tests/db/factories.py"
    for table in tables:
        cols = conn.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped",
            (f"public.{table}",),
        ).fetchall()
        assert tenant_column(table) in {c["attname"] for c in cols}


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_policies_scope_by_the_tenant_helper_evaluated_once_per_statement(conn: Conn, table: str) -> None:
    policies = conn.execute(
        "select policyname, permissive, roles, coalesce(qual, with_check) as expr from pg_policies "
        "where schemaname = 'public' and tablename = %s and 'authenticated' = any (roles)",
        (table,),
    ).fetchall()
    permissive = [p for p in policies if p["permissive"] == "PERMISSIVE"]
    assert {p["policyname"] for p in permissive} >= {"tenant_read"}
    for p in permissive:
        # `(select ...)` makes Postgres run the helper once per statement (an InitPlan), not once per row
        assert f"({tenant_column(table)} = ( SELECT current_tenant_id() AS current_tenant_id))" in p["expr"], p


def test_sensitive_tables_are_those_with_the_restrictive_aal2_policy(conn: Conn) -> None:
    rows = conn.execute(
        "select tablename from pg_policies where schemaname = 'public' and permissive = 'RESTRICTIVE' "
        "and policyname = 'sensitive_needs_aal2'"
    ).fetchall()
    assert {r["tablename"] for r in rows} == SENSITIVE


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_api_role_privileges_follow_the_model(conn: Conn, table: str) -> None:
    def has(role: str, privilege: str) -> bool:
        row = conn.execute("select has_table_privilege(%s, %s, %s) as ok", (role, f"public.{table}", privilege))
        return bool(row.fetchone()["ok"])  # type: ignore[index]

    writes = {"INSERT": table not in SERVICE_ONLY, "UPDATE": table not in SERVICE_ONLY | INSERT_ONLY}
    writes["DELETE"] = writes["UPDATE"]
    for role in ("anon", "authenticated"):
        assert has(role, "SELECT"), "Supabase grants SELECT to the API roles: RLS is the barrier"
        for privilege, allowed in writes.items():
            assert has(role, privilege) is allowed, (role, privilege)
        for privilege in ("TRUNCATE", "REFERENCES", "TRIGGER"):
            assert not has(role, privilege), (role, privilege)
    assert all(has("service_role", p) for p in ("SELECT", "INSERT", "UPDATE", "DELETE"))


@pytest.mark.parametrize("table", sorted(SERVICE_ONLY | INSERT_ONLY))
def test_service_only_tables_refuse_tenant_writes_even_if_privileges_were_granted(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str
) -> None:
    """Defence in depth: the missing privilege is not the only barrier, row level security has no write policy."""
    a, _ = two_tenants
    conn.execute(sql.SQL("grant insert, update, delete on {} to authenticated").format(sql.Identifier(table)))
    copy = row_as_json(conn, table, a.rows[table]) | {"id": str(uuid.uuid4())}
    act_as(conn, "authenticated", member(a))
    if table not in INSERT_ONLY:
        insert = sql.SQL("insert into {t} select * from jsonb_populate_record(null::{t}, %s)").format(
            t=sql.Identifier(table)
        )
        assert attempt(conn, insert, (Jsonb(copy),)) == "42501"
    col = sql.Identifier(tenant_column(table))
    update = sql.SQL("update {} set {} = {} where id = %s").format(sql.Identifier(table), col, col)
    assert attempt(conn, update, (a.rows[table],)) == 0
    assert attempt(conn, sql.SQL("delete from {} where id = %s").format(sql.Identifier(table)), (a.rows[table],)) == 0
