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
