"""mirage.db.sessions: tenant and service blocks whose role and claims end with their own transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from mirage.db.connect import get_pool
from mirage.db.sessions import SessionError, jwt_session, service_session, tenant_session
from tests.db.factories import TENANT_TABLES, TenantGraph, make_tenant_graph, tenant_column

Conn = psycopg.Connection[Any]
STATE = "select current_user as role, auth.jwt() as claims, public.current_tenant_id() as tenant"


@pytest.fixture
def committed(db: Conn) -> tuple[TenantGraph, TenantGraph]:
    """Tenants A and B committed (the `db` fixture truncates every table after the test)."""
    a, b = make_tenant_graph(db), make_tenant_graph(db)
    db.commit()
    return a, b


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    """The app's pool (its reset included) on the test database, with one connection so checkouts reuse it.

    Built through the uncached function so this test neither shares nor closes anyone else's pool.
    """
    p = get_pool.__wrapped__(database_url, min_size=1, max_size=1)
    yield p
    p.close()


def test_tenant_session_sees_only_its_tenant_in_every_table(
    db: Conn, committed: tuple[TenantGraph, TenantGraph]
) -> None:
    a, _ = committed
    with tenant_session(db, a.tenant_id, a.admin_auth_id, role="admin", aal="aal2") as c:
        for table in TENANT_TABLES:
            tenants = c.execute(f"select distinct {tenant_column(table)} as t from {table}").fetchall()
            assert [r["t"] for r in tenants] == [a.tenant_id], table


def test_claims_and_role_end_with_the_transaction_on_a_pooled_connection(
    pool: ConnectionPool, committed: tuple[TenantGraph, TenantGraph]
) -> None:
    a, _ = committed
    with pool.connection() as conn:
        login = conn.execute("select current_user as u").fetchone()["u"]  # type: ignore[index]
        pid = conn.info.backend_pid
        conn.commit()
        with tenant_session(conn, a.tenant_id, a.admin_auth_id) as c:
            inside = c.execute(STATE).fetchone()
            assert inside is not None
            assert (inside["role"], inside["tenant"]) == ("authenticated", a.tenant_id)
            assert inside["claims"]["app.tenant_id"] == str(a.tenant_id)
        # the block committed: the very next transaction on this connection is the login role, no claims
        assert conn.execute(STATE).fetchone() == {"role": login, "claims": None, "tenant": None}
        conn.commit()
    with pool.connection() as again:  # the next user of the pool gets the same, clean connection
        assert again.info.backend_pid == pid
        assert again.execute(STATE).fetchone() == {"role": login, "claims": None, "tenant": None}


def test_pool_can_be_handed_to_a_session_directly(
    pool: ConnectionPool, committed: tuple[TenantGraph, TenantGraph]
) -> None:
    _, b = committed
    with tenant_session(pool, b.tenant_id, b.admin_auth_id) as c:
        assert [r["id"] for r in c.execute("select id from t_tenants")] == [b.tenant_id]
    with pool.connection() as conn:
        assert conn.execute("select auth.jwt() as j").fetchone() == {"j": None}


def test_claims_end_when_the_block_raises(db: Conn, committed: tuple[TenantGraph, TenantGraph]) -> None:
    a, _ = committed
    db.autocommit = True
    login = db.execute("select current_user as u").fetchone()["u"]  # type: ignore[index]
    with pytest.raises(RuntimeError), tenant_session(db, a.tenant_id, a.admin_auth_id):
        raise RuntimeError("boom")
    assert db.execute(STATE).fetchone() == {"role": login, "claims": None, "tenant": None}


def test_a_session_refuses_a_connection_already_in_a_transaction(
    db: Conn, committed: tuple[TenantGraph, TenantGraph]
) -> None:
    a, _ = committed
    db.execute("select 1")  # opens a transaction: SET LOCAL inside a savepoint would outlive the block
    with pytest.raises(SessionError, match="outside any transaction"), tenant_session(db, a.tenant_id, None):
        pass


def test_a_session_cannot_commit_early(db: Conn, committed: tuple[TenantGraph, TenantGraph]) -> None:
    a, _ = committed
    with pytest.raises(psycopg.ProgrammingError), tenant_session(db, a.tenant_id, None) as c:
        c.commit()


def test_service_session_sees_every_tenant_as_service_role(
    db: Conn, committed: tuple[TenantGraph, TenantGraph]
) -> None:
    a, b = committed
    with service_session(db) as c:
        assert c.execute("select current_user as u, auth.role() as r").fetchone() == {
            "u": "service_role",
            "r": "service_role",
        }
        ids = {r["id"] for r in c.execute("select id from t_tenants")}
        assert {a.tenant_id, b.tenant_id} <= ids


def test_jwt_session_without_claims_sees_nothing(db: Conn, committed: tuple[TenantGraph, TenantGraph]) -> None:
    with jwt_session(db, "authenticated", None) as c:
        assert c.execute("select count(*) as n from t_numbers").fetchone() == {"n": 0}


def test_sessions_ignore_claims_left_on_the_connection_by_a_session_level_set(
    db: Conn, committed: tuple[TenantGraph, TenantGraph]
) -> None:
    a, b = committed
    db.autocommit = True
    db.execute("select set_config('request.jwt.claims', %s, false)", (f'{{"app.tenant_id": "{b.tenant_id}"}}',))
    db.execute("select set_config('request.jwt.claim.sub', %s, false)", (str(b.admin_auth_id),))
    with tenant_session(db, a.tenant_id, a.admin_auth_id) as c:
        assert c.execute("select auth.uid() as u, public.current_tenant_id() as t").fetchone() == {
            "u": a.admin_auth_id,
            "t": a.tenant_id,
        }
    with jwt_session(db, "authenticated", None) as c:
        assert c.execute("select count(*) as n from t_tenants").fetchone() == {"n": 0}


def test_jwt_session_refuses_unknown_roles(db: Conn) -> None:
    with pytest.raises(SessionError, match="unknown database role"), jwt_session(db, "postgres", {}):  # type: ignore[arg-type]
        pass
