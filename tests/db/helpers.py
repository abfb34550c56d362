"""Acting as a role inside the current test transaction, and the access model the RLS tests hold the schema to."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import errors, sql

from mirage.db.sessions import tenant_claims
from tests.db.factories import TenantGraph, tenant_column

# The model of docs/adr/0001-tenancy-and-rls.md, table by table (any other tenant-scoped table: admins
# with aal2 write it, members read it at aal1).
SERVICE_ONLY = frozenset(
    {
        "t_tenants",
        "t_users",
        "t_tenant_secrets",
        "t_sessions",
        "t_rounds",
        "t_messages",
        "t_webhook_events",
        "t_applies",
        "t_viewer_links",
        "t_viewer_sessions",
        "t_optout_reviews",
    }
)
INSERT_ONLY = frozenset({"t_optouts"})
SENSITIVE = frozenset({"t_tenant_secrets", "t_sessions", "t_webhook_events", "t_viewer_links", "t_viewer_sessions"})

Conn = psycopg.Connection[Any]


def act_as(conn: Conn, role: str, claims: Mapping[str, object] | str | None = None) -> None:
    """Become `role` with `claims` (a mapping, a raw string, or None for none) until the transaction ends.

    Like supabase-test-helpers' `authenticate_as`: SET LOCAL inside the test's own transaction, which
    the fixture rolls back. The app uses mirage.db.sessions, which owns its transaction instead.
    """
    conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
    raw = claims if isinstance(claims, str) or claims is None else json.dumps(dict(claims))
    conn.execute("select set_config('request.jwt.claims', %s, true)", (raw or "",))


def act_as_owner(conn: Conn) -> None:
    conn.execute("reset role")
    conn.execute("select set_config('request.jwt.claims', '', true)")


def member(
    graph: TenantGraph, *, role: str = "admin", aal: str = "aal2", sub: object | None = None
) -> dict[str, object]:
    """Claims of `graph`'s linked admin (or `sub`), as Supabase issues them after the access token hook."""
    return tenant_claims(graph.tenant_id, sub or graph.admin_auth_id, role=role, aal=aal)  # type: ignore[arg-type]


def visible(conn: Conn, table: str) -> list[tuple[str, str]]:
    """(id, tenant) of every row of `table` the current role can see."""
    col = tenant_column(table)
    rows = conn.execute(
        sql.SQL("select id::text as id, {}::text as tenant from {}").format(sql.Identifier(col), sql.Identifier(table))
    ).fetchall()
    return [(r["id"], r["tenant"]) for r in rows]


def attempt(conn: Conn, query: sql.Composable | str, params: Any = None) -> int | str:
    """Run `query` in a savepoint: its row count, or the SQLSTATE it failed with (rolled back)."""
    try:
        with conn.transaction():
            return conn.execute(query, params).rowcount
    except errors.Error as e:
        return e.sqlstate or type(e).__name__


def row_as_json(conn: Conn, table: str, row_id: object) -> dict[str, Any]:
    """The whole row as a JSON object (read as the current role)."""
    row = conn.execute(
        sql.SQL("select to_jsonb(t) as j from {} t where id = %s").format(sql.Identifier(table)), (row_id,)
    ).fetchone()
    assert row is not None, f"{table} row {row_id} not found"
    return dict(row["j"])


# Supabase-shaped databases -------------------------------------------------------------------------------
# On Supabase, auth.users and the supabase_auth_admin role exist before any migration; on plain Postgres the
# tests create stand-ins. These helpers create them only when missing, so the same tests run on both.

AUTH_USERS_STAND_IN = """
create table auth.users (
  id uuid primary key,
  email text,
  email_confirmed_at timestamptz,
  is_sso_user boolean not null default false,
  deleted_at timestamptz,
  created_at timestamptz default now()
)
"""


def ensure_auth_users(conn: Conn) -> bool:
    """auth.users with the columns Mirage reads; True when this call created the stand-in (drop it after)."""
    row = conn.execute("select to_regclass('auth.users') is not null as present").fetchone()
    if row is not None and (row["present"] if isinstance(row, dict) else row[0]):
        return False
    conn.execute(AUTH_USERS_STAND_IN)
    return True


def add_auth_user(conn: Conn, user_id: Any, email: str, confirmed: bool | str = True, *, sso: bool = False) -> None:
    """One sign-in; `confirmed` may be an SQL timestamp expression (`now() - interval '1 day'`)."""
    at = "now()" if confirmed is True else ("null" if confirmed is False else confirmed)
    conn.execute(
        f"insert into auth.users (id, email, email_confirmed_at, is_sso_user) values (%s, %s, {at}, %s)",
        (user_id, email, sso),
    )


def ensure_role(conn: Conn, name: str, options: str = "nologin noinherit") -> bool:
    """Create role `name` unless the cluster has it (Supabase's own roles); True when this call created it."""
    row = conn.execute("select 1 from pg_catalog.pg_roles where rolname = %s", (name,)).fetchone()
    if row is not None:
        return False
    conn.execute(sql.SQL("create role {} " + options).format(sql.Identifier(name)))
    return True
