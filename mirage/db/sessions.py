"""Run a block of SQL as a tenant user or as the service, with role and JWT claims local to one transaction.

This is what PostgREST does per request on Supabase: `set local role` plus the transaction-local setting
`request.jwt.claims`, which row level security reads through `auth.jwt()`. Both end with the
transaction (commit or rollback), so a pooled connection never carries them to its next user.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal
from uuid import UUID

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from mirage.errors import MirageError

DbRole = Literal["anon", "authenticated", "service_role"]
AppRole = Literal["admin", "member", "viewer"]
Aal = Literal["aal1", "aal2"]
Target = psycopg.Connection[Any] | ConnectionPool
AsyncConn = psycopg.AsyncConnection[Any]

_DB_ROLES = ("anon", "authenticated", "service_role")
# The claims, and '' for the legacy per-claim settings auth.*() read first: whatever a careless
# session-level SET left on the connection cannot leak into this transaction.
SET_CLAIMS_SQL = (
    "select set_config('request.jwt.claims', %s, true), set_config('request.jwt.claim', '', true), "
    "set_config('request.jwt.claim.sub', '', true), set_config('request.jwt.claim.role', '', true), "
    "set_config('request.jwt.claim.email', '', true)"
)
# The role too, in the same statement (`set_config('role', ..., true)` is `set local role`, as PostgREST sends it).
SET_ROLE_AND_CLAIMS_SQL = "select set_config('role', %s, true), " + SET_CLAIMS_SQL.removeprefix("select ")


class SessionError(MirageError):
    """A tenant or service session cannot start safely on this connection."""


def tenant_claims(
    tenant_id: UUID | str,
    user_id: UUID | str | None,
    *,
    role: AppRole = "viewer",
    aal: Aal = "aal1",
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The claims Supabase Auth issues for a member once the access token hook has run."""
    claims: dict[str, object] = {
        "role": "authenticated",
        "aal": aal,
        "app.tenant_id": str(tenant_id),
        "app.role": role,
    }
    if user_id is not None:
        claims["sub"] = str(user_id)
    claims.update(extra or {})
    return claims


@contextmanager
def jwt_session(
    target: Target, db_role: DbRole, claims: Mapping[str, object] | None
) -> Iterator[psycopg.Connection[Any]]:
    """Run the block in one transaction as `db_role` with `claims` (None: no claims at all).

    The transaction commits when the block ends and rolls back when it raises. The connection must not
    be inside a transaction already: SET LOCAL in a savepoint would outlive the block.
    """
    if db_role not in _DB_ROLES:
        raise SessionError(f"unknown database role {db_role!r}: use one of {', '.join(_DB_ROLES)}")
    payload = None if claims is None else json.dumps(dict(claims), default=str, separators=(",", ":"))
    with _connection(target) as conn:
        if conn.info.transaction_status != TransactionStatus.IDLE:
            raise SessionError(
                "a tenant or service session needs a connection outside any transaction "
                "(commit or roll back first): its role and claims must end with its own transaction"
            )
        with conn.transaction():
            conn.execute(SET_ROLE_AND_CLAIMS_SQL, (db_role, payload or ""))
            yield conn


@contextmanager
def tenant_session(
    target: Target,
    tenant_id: UUID | str,
    user_id: UUID | str | None,
    *,
    role: AppRole = "viewer",
    aal: Aal = "aal1",
) -> Iterator[psycopg.Connection[Any]]:
    """Run the block as a member of `tenant_id`: role `authenticated`, row level security applies.

    Reads see only that tenant's rows; writes also need `role="admin"`, `aal="aal2"` and a live admin
    row in t_users for `user_id`; sensitive tables need aal2 and a live membership to be read.
    """
    with jwt_session(target, "authenticated", tenant_claims(tenant_id, user_id, role=role, aal=aal)) as conn:
        yield conn


@contextmanager
def service_session(target: Target) -> Iterator[psycopg.Connection[Any]]:
    """Run the block as `service_role` (bypasses row level security): apply, ingest, workers, metrics refresh."""
    with jwt_session(target, "service_role", {"role": "service_role"}) as conn:
        yield conn


@asynccontextmanager
async def async_service_session(conn: AsyncConn) -> AsyncIterator[AsyncConn]:
    """One transaction as the service (role service_role, which bypasses RLS; no JWT claims), pipelined.

    BEGIN, the role and claims (what `jwt_session(conn, "service_role", None)` sets, in one statement),
    the block's statements and COMMIT are sent together and answered together: one round trip. Results are read
    after the block. The connection must be in autocommit mode (the web pool's are): psycopg's `transaction()`
    adds syncs of its own in a pipeline (four round trips instead of one in the bench). Role and claims are local
    to the transaction, so they end with it whatever happens.
    """
    if not conn.autocommit:  # psycopg would open a transaction of its own around ours
        raise psycopg.ProgrammingError("async_service_session() needs a connection in autocommit mode")
    try:
        async with conn.pipeline():
            await conn.execute("begin")
            await conn.execute(SET_ROLE_AND_CLAIMS_SQL, ("service_role", ""))
            yield conn
            await conn.execute("commit")
    except Exception:  # on cancellation the pool does it when the connection comes back
        if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            with contextlib.suppress(psycopg.Error):
                await conn.rollback()
        raise


@contextmanager
def _connection(target: Target) -> Iterator[psycopg.Connection[Any]]:
    if isinstance(target, ConnectionPool):
        with target.connection() as conn:
            yield conn
    else:
        yield target
