"""Every read a page makes runs in the viewer's tenant session — role `authenticated`, the viewer's tenant, role and
aal in the transaction's claims — never as the service, so row level security (not a WHERE clause a page could
forget) decides what exists. Observed in Postgres itself: before each page query, the same connection reports
`current_user` and `request.jwt.claims`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

import mirage.db.page as page_queries
from mirage.db.viewers import Viewer
from tests.pages.conftest import access_token, bearer
from tests.pages.helpers import Fleet, refresh, seed_fleet

PAGES = ["/", "/numbers/{a}", "/conversations/{main}", "/messages", "/live.json", "/operators/qr"]


@pytest.fixture
def two(db: Any) -> tuple[Fleet, Fleet]:
    a = seed_fleet(db, "alfa", days=2)
    b = seed_fleet(db, "beta", days=2)
    db.commit()
    refresh(db)
    return a, b


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Who Postgres says is asking, for every query of mirage.db.page (the page's only reads)."""
    seen: list[dict[str, Any]] = []
    original = page_queries._all

    async def observing(conn: Any, query: str, params: Any = None) -> list[dict[str, Any]]:
        cur = await conn.execute(
            "select current_user::text as role, current_setting('request.jwt.claims', true) as claims"
        )
        seen.append(dict(await cur.fetchone()))
        return await original(conn, query, params)

    monkeypatch.setattr(page_queries, "_all", observing)
    return seen


@pytest.mark.parametrize("path", PAGES)
def test_every_page_query_runs_as_the_viewers_tenant_never_as_the_service(
    client: Any, two: tuple[Fleet, Fleet], observed: list[dict[str, Any]], path: str
) -> None:
    a, _ = two
    url = path.format(a=a.numbers["a"], main=a.conversations["main"])
    response = client.get(url, headers=bearer(access_token(a, "admin", "aal2")))
    assert response.status_code == 200, response.text
    assert observed, "the page read nothing through mirage.db.page"
    for seen in observed:
        claims = json.loads(seen["claims"])
        assert seen["role"] == "authenticated"
        assert (claims["app.tenant_id"], claims["app.role"], claims["aal"]) == (str(a.tenant_id), "admin", "aal2")


def test_a_page_query_without_a_tenant_filter_still_sees_only_the_viewers_tenant(
    database_url: str, two: tuple[Fleet, Fleet]
) -> None:
    a, b = two
    viewer = Viewer(a.tenant_id, a.users["member"], a.auth_ids["member"], a.emails["member"], "member", "aal1")

    async def unfiltered() -> list[set[Any]]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database_url, min_size=1, max_size=1, open=False, kwargs={"row_factory": dict_row, "autocommit": True}
        )
        await pool.open()
        try:
            async with page_queries.viewer_session(pool, viewer) as conn:
                out = []
                for table in ("t_messages", "t_numbers", "t_rounds", "t_conversations", "t_tenants"):
                    tenant = "id" if table == "t_tenants" else "tenant_id"
                    cur = await conn.execute(f"select distinct {tenant} as t from {table}")  # a page with a bug
                    out.append({r["t"] for r in await cur.fetchall()})
                return out
        finally:
            await pool.close()

    assert all(seen == {a.tenant_id} for seen in asyncio.run(unfiltered()))
    assert b.tenant_id != a.tenant_id
