"""The runtime's transactions (`mirage.jobs.runtime.tx`) run as the service role, and nothing of it outlives them."""

from __future__ import annotations

import psycopg
import pytest

from mirage.jobs.runtime import db, tx

SEEN = "select current_user as role, current_setting('request.jwt.claims', true) as claims"


@pytest.mark.parametrize("autocommit", [True, False], ids=["worker-connection", "other-connection"])
def test_a_runtime_transaction_runs_as_the_service_and_leaves_nothing_behind(
    database_url: str, autocommit: bool
) -> None:
    with psycopg.connect(database_url, autocommit=autocommit) as conn:
        before = conn.execute(SEEN).fetchone()
        conn.commit()
        with tx(conn) as c:
            inside = c.execute(SEEN).fetchone()
        after = conn.execute(SEEN).fetchone()
        conn.commit()
    assert inside == ("service_role", '{"role":"service_role"}')
    assert after is not None and before is not None
    assert after[0] == before[0] != "service_role"
    assert not after[1]  # the claims ended with the transaction (Postgres keeps the setting, empty)


def test_a_runtime_transaction_that_raises_writes_nothing(database_url: str) -> None:
    with db() as conn:
        conn.execute("create temporary table probe (n int)")
        conn.execute("grant insert, select on probe to service_role")
        with pytest.raises(ZeroDivisionError), tx(conn) as c:
            c.execute("insert into probe values (1)")
            raise ZeroDivisionError
        with tx(conn) as c:
            c.execute("insert into probe values (2)")
        rows = conn.execute("select n from probe").fetchall()
        role = conn.execute("select current_user as role").fetchone()
    assert [r["n"] for r in rows] == [2]
    assert role is not None and role["role"] != "service_role"
