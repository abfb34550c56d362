"""Group commit: concurrent webhooks share a transaction; one bad event never costs the others; a dead Postgres
gives 503 (Evolution retries) instead of a 500 or a lost event."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import httpx
import psycopg
import pytest
import redis as redis_lib
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mirage.crypto import keyring
from mirage.db.connect import open_async_pool
from mirage.db.evolution_sessions import SessionAuth
from mirage.db.sessions import async_service_session
from mirage.ingest.pipeline import StorageUnavailable
from mirage.ingest.writer import MAX_BATCH, BatchWriter
from mirage.integrations.evolution.envelope import parse_envelope
from mirage.settings import Settings, get_settings
from mirage.web import state as web_state
from mirage.web.app import create_app
from mirage.web.auth import AuthCache, Directory
from tests.webhooks.conftest import in_app_loop, post_many
from tests.webhooks.helpers import WEBHOOK, Seeded, SilentRedis, events, incoming_text, messages, seed_instance

Conn = psycopg.Connection[Any]


def test_concurrent_webhooks_are_committed_in_batches(app: Starlette, db: Conn, acme: Seeded) -> None:
    requests = [(incoming_text(f"m{i}", f"BATCH{i}"), acme.headers()) for i in range(24)]
    responses = post_many(app, requests)
    assert {r.json()["status"] for r in responses} == {"processed"}
    stats = app.state.mirage.stats
    assert stats.events == 24 and 24 / MAX_BATCH <= stats.batches < 12  # many requests shared one commit
    assert len(messages(db)) == 24


def test_one_bad_event_in_a_batch_does_not_cost_the_others(
    app: Starlette, client: httpx.Client, db: Conn, acme: Seeded, redis: redis_lib.Redis
) -> None:
    other = seed_instance(db, "other", instance="other-main", number="+5511944440000")
    for seeded in (acme, other):  # cache both sessions
        r = client.post(WEBHOOK, content=incoming_text("warm", instance=seeded.instance), headers=seeded.headers())
        assert r.status_code == 200
    db.execute("delete from t_numbers where id = %s", (other.number_id,))  # other's cached number is now stale
    db.commit()
    bad = (incoming_text("stale number", "BAD1", instance=other.instance), other.headers())
    good = [(incoming_text(f"good {i}", f"GOOD{i}"), acme.headers()) for i in range(6)]
    responses = post_many(app, [bad, *good])
    assert [r.json()["status"] for r in responses] == ["stored"] + ["processed"] * 6
    assert sorted(m["body"] for m in messages(db) if m["body"].startswith("good")) == [f"good {i}" for i in range(6)]
    assert [e["status"] for e in events(db) if e["idem_key"] == "msg:other-main:BAD1"] == ["stored"]


def test_an_unreachable_database_answers_503_and_readyz_says_so(monkeypatch: pytest.MonkeyPatch, acme: Seeded) -> None:
    monkeypatch.setattr(web_state, "POOL_TIMEOUT_S", 0.3)
    dead = "host=127.0.0.1 port=9 dbname=nowhere user=nobody connect_timeout=1"
    app = create_app(Settings.from_env({**os.environ, "DATABASE_URL": dead}))
    with TestClient(app) as c:  # its lifespan closes the pool
        r = c.post(WEBHOOK, content=incoming_text("lost?"), headers=acme.headers())
        assert r.status_code == 503 and r.json() == {"ok": False, "reason": "storage_unavailable"}
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200


def test_the_auth_directory_expires_reloads_and_refreshes_at_most_once_a_second() -> None:
    now = [0.0]
    loads: list[float] = []
    slept: list[float] = []

    async def load() -> Directory:
        loads.append(now[0])
        return Directory.of([])

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)
        now[0] += seconds

    async def run() -> None:
        cache = AuthCache(load, ttl=30, refresh_after=1.0, clock=lambda: now[0], sleep=sleep)
        first = await cache.directory()
        assert await cache.directory() is first and loads == [0.0]
        now[0] = 0.5
        await cache.refresh()  # a miss this soon waits for the next allowed load instead of going without
        assert slept == [0.5] and loads == [0.0, 1.0]
        now[0] = 29.9
        second = await cache.directory()
        assert second is not first and loads == [0.0, 1.0]
        now[0] = 31.0
        assert await cache.directory() is not second and loads == [0.0, 1.0, 31.0]
        now[0] = 32.5
        await cache.refresh()  # the last load is old enough: at once
        assert slept == [0.5] and loads == [0.0, 1.0, 31.0, 32.5]
        cache.invalidate()
        await cache.directory()
        assert loads == [0.0, 1.0, 31.0, 32.5, 32.5]

    asyncio.run(run())


def test_misses_within_the_same_second_wait_together_and_share_one_load() -> None:
    """Fourteen new instances' first webhooks arriving together (Evolution does not retry a 401): one load, after
    which every one of them is looked up again."""
    now = [0.0]
    loads: list[float] = []

    async def load() -> Directory:
        loads.append(now[0])
        await asyncio.sleep(0)
        return Directory.of([])

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)
        now[0] = max(now[0], 1.0)

    async def run() -> None:
        cache = AuthCache(load, ttl=30, refresh_after=1.0, clock=lambda: now[0], sleep=sleep)
        await cache.directory()
        now[0] = 0.25
        await asyncio.gather(*(cache.refresh() for _ in range(14)))
        assert loads == [0.0, 1.0]

    asyncio.run(run())


def test_concurrent_loads_of_the_directory_share_one() -> None:
    loads: list[int] = []

    async def load() -> Directory:
        loads.append(1)
        await asyncio.sleep(0.01)
        return Directory.of([])

    async def run() -> list[Any]:
        cache = AuthCache(load)
        return list(await asyncio.gather(*(cache.directory() for _ in range(8))))

    found = asyncio.run(run())
    assert loads == [1] and all(f is found[0] for f in found)


def test_a_hung_redis_never_holds_up_other_webhooks(
    app: Starlette, client: httpx.Client, db: Conn, acme: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event whose normalising fails is stored and its reprocess job enqueued; while Redis hangs on that,
    other webhooks are still written and answered (the enqueue waits in a thread, never on the event loop)."""
    silent = SilentRedis()
    monkeypatch.setenv("REDIS_URL", silent.url)
    get_settings.cache_clear()
    other = seed_instance(db, "other", instance="other-main", number="+5511944440000")
    for seeded in (acme, other):  # cache both sessions
        r = client.post(WEBHOOK, content=incoming_text("warm", instance=seeded.instance), headers=seeded.headers())
        assert r.status_code == 200
    db.execute("delete from t_numbers where id = %s", (other.number_id,))  # other's next event cannot normalise
    db.commit()

    async def run(c: httpx.AsyncClient) -> tuple[httpx.Response, bool, httpx.Response]:
        bad = incoming_text("stale number", "BAD1", instance=other.instance)
        deferred = asyncio.create_task(c.post(WEBHOOK, content=bad, headers=other.headers()))
        assert await asyncio.to_thread(silent.accepted.wait, 10)  # enqueueing its job: Redis does not answer
        meanwhile = await c.post(WEBHOOK, content=incoming_text("meanwhile", "GOOD1"), headers=acme.headers())
        still_hung = silent.first_still_open()
        silent.close()
        return meanwhile, still_hung, await deferred

    try:
        meanwhile, still_hung, deferred = in_app_loop(app, run)
    finally:
        silent.close()
    assert meanwhile.json()["status"] == "processed"
    assert still_hung, "the webhook waited for the hung Redis"
    assert deferred.status_code == 200 and deferred.json()["status"] == "stored"


@pytest.mark.parametrize("fails", [False, True], ids=["committed", "rolled-back"])
def test_a_service_transaction_leaves_its_pooled_connection_as_it_found_it(database_url: str, fails: bool) -> None:
    """BEGIN ... COMMIT travel pipelined on an autocommit connection: role and claims end with the transaction,
    whether it commits or fails, so the next user of the connection starts clean."""

    async def run() -> tuple[Any, Any]:
        pool = await open_async_pool(database_url, min_size=1, max_size=1)
        try:
            async with pool.connection() as conn:
                login = (await (await conn.execute("select current_user as u")).fetchone())["u"]  # type: ignore[index]
                with pytest.raises(psycopg.errors.DivisionByZero) if fails else contextlib.nullcontext():
                    async with async_service_session(conn):
                        cur = await conn.execute("select current_user as u")
                        if fails:
                            await conn.execute("select 1 / 0")
                    assert (await cur.fetchone())["u"] == "service_role"  # type: ignore[index]
            async with pool.connection() as conn:  # the same, only connection
                after = await (
                    await conn.execute("select current_user as u, current_setting('request.jwt.claims', true) as c")
                ).fetchone()
                return login, (conn.info.transaction_status, after)
        finally:
            await pool.close()

    login, (status, after) = asyncio.run(run())
    assert status == psycopg.pq.TransactionStatus.IDLE
    assert after["u"] == login and after["c"] in (None, "")


def test_requests_waiting_on_a_writer_that_stops_get_503_not_a_hang(
    monkeypatch: pytest.MonkeyPatch, database_url: str, acme: Seeded
) -> None:
    async def broken(self: BatchWriter, batch: list[Any]) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(BatchWriter, "_write", broken)
    auth = SessionAuth(acme.session_id, acme.tenant_id, acme.number_id, acme.instance, None, b"s", None)
    envs = [parse_envelope(incoming_text(f"m{i}")) for i in range(5)]

    async def run() -> list[Any]:
        pool = await open_async_pool(database_url)
        try:
            writer = BatchWriter(pool, keyring, max_batch=2)
            return list(await asyncio.gather(*(writer.submit(auth, e, "header") for e in envs), return_exceptions=True))
        finally:
            await pool.close()

    results = asyncio.run(asyncio.wait_for(run(), timeout=10))
    assert all(isinstance(r, StorageUnavailable) for r in results), results
