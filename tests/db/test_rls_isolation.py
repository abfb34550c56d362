"""Tenant isolation, proved table by table on the real schema with rows of two tenants.

Parametrised over every tenant-scoped table (tests.db.factories.TENANT_TABLES, which
test_rls_catalog.py holds equal to the catalog). Each test builds tenants A and B in one transaction,
acts as a role with given claims, and is rolled back.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.db.factories import TENANT_TABLES, TenantGraph, tenant_column
from tests.db.helpers import (
    INSERT_ONLY,
    SENSITIVE,
    SERVICE_ONLY,
    act_as,
    act_as_owner,
    attempt,
    member,
    row_as_json,
    visible,
)

Conn = psycopg.Connection[Any]
INSUFFICIENT_PRIVILEGE = "42501"
ADMIN_WRITABLE = [t for t in TENANT_TABLES if t not in SERVICE_ONLY | INSERT_ONLY]
READABLE_AT_AAL1 = [t for t in TENANT_TABLES if t not in SENSITIVE]

MALFORMED_TENANT_CLAIMS = [
    "not-a-uuid",
    "",
    42,
    None,
    {"id": "00000000-0000-0000-0000-000000000000"},
    ["00000000-0000-0000-0000-000000000000"],
    "' or true --",
]


def _ids(graph: TenantGraph, table: str) -> set[tuple[str, str]]:
    return {(str(graph.rows[table]), str(graph.tenant_id))}


def _update_tenant(table: str, row_id: uuid.UUID, tenant: uuid.UUID) -> tuple[sql.Composable, tuple[object, ...]]:
    col = sql.Identifier(tenant_column(table))
    return sql.SQL("update {} set {} = %s where id = %s").format(sql.Identifier(table), col), (tenant, row_id)


def _touch(table: str, row_id: uuid.UUID) -> tuple[sql.Composable, tuple[object, ...]]:
    """A no-op update of one row: succeeds (1 row) only where the role may write it."""
    col = sql.Identifier(tenant_column(table))
    return sql.SQL("update {} set {} = {} where id = %s").format(sql.Identifier(table), col, col), (row_id,)


@pytest.mark.parametrize("table", READABLE_AT_AAL1)
def test_member_reads_only_own_tenant_rows(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str
) -> None:
    a, _ = two_tenants
    act_as(conn, "authenticated", member(a, role="viewer", aal="aal1"))
    rows = set(visible(conn, table))
    assert _ids(a, table) <= rows
    assert {tenant for _, tenant in rows} == {str(a.tenant_id)}


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_aal2_member_reads_only_own_tenant_rows(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str
) -> None:
    _, b = two_tenants
    act_as(conn, "authenticated", member(b, role="viewer", aal="aal2"))
    rows = set(visible(conn, table))
    assert _ids(b, table) <= rows
    assert {tenant for _, tenant in rows} == {str(b.tenant_id)}


@pytest.mark.parametrize("table", sorted(SENSITIVE))
@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_aal1_cannot_read_sensitive_tables(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str, role: str
) -> None:
    a, _ = two_tenants
    act_as(conn, "authenticated", member(a, role=role, aal="aal1"))
    assert visible(conn, table) == []


@pytest.mark.parametrize("table", sorted(SENSITIVE))
def test_sensitive_tables_need_a_live_membership_even_with_aal2(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str
) -> None:
    a, _ = two_tenants
    act_as(conn, "authenticated", member(a, aal="aal2", sub=uuid.uuid4()))  # valid claims, no t_users link
    assert visible(conn, table) == []


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_insert_with_other_tenant_id_is_refused(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str
) -> None:
    a, b = two_tenants
    copy = row_as_json(conn, table, a.rows[table]) | {"id": str(uuid.uuid4()), tenant_column(table): str(b.tenant_id)}
    act_as(conn, "authenticated", member(a))
    insert = sql.SQL("insert into {t} select * from jsonb_populate_record(null::{t}, %s)").format(
        t=sql.Identifier(table)
    )
    assert attempt(conn, insert, (Jsonb(copy),)) == INSUFFICIENT_PRIVILEGE


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_moving_own_row_to_other_tenant_is_refused(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str
) -> None:
    a, b = two_tenants
    act_as(conn, "authenticated", member(a))
    assert attempt(conn, *_update_tenant(table, a.rows[table], b.tenant_id)) == INSUFFICIENT_PRIVILEGE
    act_as_owner(conn)
    assert row_as_json(conn, table, a.rows[table])[tenant_column(table)] == str(a.tenant_id)


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_other_tenants_rows_cannot_be_updated_or_deleted(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str
) -> None:
    a, b = two_tenants
    act_as(conn, "authenticated", member(a))
    target = sql.Identifier(table)
    for query, params in [
        _touch(table, b.rows[table]),
        _update_tenant(table, b.rows[table], a.tenant_id),
        (sql.SQL("delete from {} where id = %s").format(target), (b.rows[table],)),
    ]:
        assert attempt(conn, query, params) in (0, INSUFFICIENT_PRIVILEGE)
    act_as_owner(conn)
    assert row_as_json(conn, table, b.rows[table])[tenant_column(table)] == str(b.tenant_id)


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_only_admin_writable_tables_accept_an_admin_with_aal2(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str
) -> None:
    a, _ = two_tenants
    act_as(conn, "authenticated", member(a, role="admin", aal="aal2"))
    expected = 1 if table in ADMIN_WRITABLE else INSUFFICIENT_PRIVILEGE
    assert attempt(conn, *_touch(table, a.rows[table])) == expected


@pytest.mark.parametrize("table", ADMIN_WRITABLE)
@pytest.mark.parametrize(
    "who",
    ["viewer claim", "member claim", "admin claim at aal1", "admin claim, demoted in t_users", "admin claim, unlinked"],
)
def test_writes_need_admin_claim_aal2_and_live_admin_membership(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str, who: str
) -> None:
    a, _ = two_tenants
    claims = {
        "viewer claim": member(a, role="viewer"),
        "member claim": member(a, role="member"),
        "admin claim at aal1": member(a, aal="aal1"),
        "admin claim, demoted in t_users": member(a),
        "admin claim, unlinked": member(a, sub=uuid.uuid4()),
    }[who]
    if who == "admin claim, demoted in t_users":
        conn.execute("update t_users set role = 'member' where id = %s", (a.admin_user_id,))
    act_as(conn, "authenticated", claims)
    assert attempt(conn, *_touch(table, a.rows[table])) == 0
    assert attempt(conn, sql.SQL("delete from {} where id = %s").format(sql.Identifier(table)), (a.rows[table],)) == 0


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_authenticated_without_claims_sees_nothing(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str
) -> None:
    act_as(conn, "authenticated", None)
    assert visible(conn, table) == []


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_anon_sees_and_writes_nothing_even_with_tenant_claims(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str
) -> None:
    a, _ = two_tenants
    copy = row_as_json(conn, table, a.rows[table]) | {"id": str(uuid.uuid4())}
    for claims in (None, member(a) | {"role": "anon"}):
        act_as(conn, "anon", claims)
        assert visible(conn, table) == []
        insert = sql.SQL("insert into {t} select * from jsonb_populate_record(null::{t}, %s)").format(
            t=sql.Identifier(table)
        )
        assert attempt(conn, insert, (Jsonb(copy),)) == INSUFFICIENT_PRIVILEGE
        assert attempt(conn, *_touch(table, a.rows[table])) in (0, INSUFFICIENT_PRIVILEGE)


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_malformed_tenant_claim_fails_closed(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str
) -> None:
    a, _ = two_tenants
    for bad in MALFORMED_TENANT_CLAIMS:
        act_as(conn, "authenticated", member(a) | {"app.tenant_id": bad})
        assert visible(conn, table) == [], f"app.tenant_id={bad!r} exposed rows"
        assert attempt(conn, *_touch(table, a.rows[table])) in (0, INSUFFICIENT_PRIVILEGE)


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_service_role_sees_every_tenant(conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str) -> None:
    a, b = two_tenants
    act_as(conn, "service_role", {"role": "service_role"})
    assert _ids(a, table) | _ids(b, table) <= set(visible(conn, table))


@pytest.mark.parametrize("table", TENANT_TABLES)
@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_cannot_truncate(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], table: str, role: str
) -> None:
    a, _ = two_tenants
    act_as(conn, role, member(a))
    assert attempt(conn, sql.SQL("truncate {}").format(sql.Identifier(table))) == INSUFFICIENT_PRIVILEGE


def test_admin_with_aal2_can_insert_in_own_tenant(conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph]) -> None:
    a, _ = two_tenants
    act_as(conn, "authenticated", member(a))
    insert = "insert into t_contacts (tenant_id, wa_number, display_name) values (%s, '+5511966660001', 'João')"
    assert attempt(conn, insert, (a.tenant_id,)) == 1
    assert (
        attempt(
            conn,
            "insert into t_optouts (tenant_id, wa_number, source) values (%s, '+5511966660001', 'manual')",
            (a.tenant_id,),
        )
        == 1
    )


def test_optouts_are_never_undone_by_tenant_users(conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph]) -> None:
    a, _ = two_tenants
    act_as(conn, "authenticated", member(a))
    assert attempt(conn, "delete from t_optouts where id = %s", (a.rows["t_optouts"],)) == INSUFFICIENT_PRIVILEGE
    assert (
        attempt(conn, "update t_optouts set keyword = null where id = %s", (a.rows["t_optouts"],))
        == INSUFFICIENT_PRIVILEGE
    )


def test_invalid_claims_json_raises_instead_of_returning_rows(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph]
) -> None:
    act_as(conn, "authenticated", "{not json")
    assert attempt(conn, "select count(*) from t_numbers") == "22P02"


def test_tenant_helper_is_null_without_a_valid_claim(conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph]) -> None:
    a, _ = two_tenants
    act_as(conn, "authenticated", member(a))
    assert conn.execute("select public.current_tenant_id() as t").fetchone() == {"t": a.tenant_id}
    for bad in MALFORMED_TENANT_CLAIMS:
        act_as(conn, "authenticated", member(a) | {"app.tenant_id": bad})
        assert conn.execute("select public.current_tenant_id() as t").fetchone() == {"t": None}
