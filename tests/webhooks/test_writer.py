"""Group commit: concurrent webhooks share a transaction; one bad event never costs the others; a dead Postgres
gives 503 (Evolution retries) instead of a 500 or a lost event."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import psycopg
import pytest
import redis as redis_lib
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mirage.db.connect import get_pool
from mirage.settings import Settings, get_settings
from mirage.web import state as web_state
from mirage.web.app import create_app
from mirage.web.auth import AuthCache
from tests.webhooks.conftest import post_many
from tests.webhooks.helpers import WEBHOOK, Seeded, SilentRedis, events, incoming_text, messages, seed_instance

Conn = psycopg.Connection[Any]


def test_concurrent_webhooks_are_committed_in_batches(app: Starlette, db: Conn, acme: Seeded) -> None:
    requests = [(incoming_text(f"m{i}", f"BATCH{i}"), acme.headers()) for i in range(24)]
    responses = post_many(app, requests)
    assert {r.json()["status"] for r in responses} == {"processed"}
    writer = app.state.mirage.writer
    assert writer.events == 24 and writer.batches < 12  # many requests shared one commit
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
    try:
        with TestClient(app) as c:
            r = c.post(WEBHOOK, content=incoming_text("lost?"), headers=acme.headers())
            assert r.status_code == 503 and r.json() == {"ok": False, "reason": "storage_unavailable"}
            assert c.get("/readyz").status_code == 503
            assert c.get("/healthz").status_code == 200
    finally:
        get_pool(dead).close()


def test_the_auth_cache_expires_and_reloads() -> None:
    now = [0.0]
    loads: list[str] = []

    def load(name: str) -> Any:
        loads.append(name)
        return object()

    cache = AuthCache(load, ttl=30, clock=lambda: now[0])
    first = cache.get("i")
    assert cache.peek("i") is first and cache.get("i") is first
    now[0] = 29.9
    assert cache.peek("i") is first
    now[0] = 30.0
    assert cache.peek("i") is None
    assert cache.get("i") is not first and loads == ["i", "i"]
    assert cache.get("i", max_age=0) is not None and loads == ["i", "i", "i"]


def test_a_hung_redis_never_holds_up_other_webhooks(
    app: Starlette, client: httpx.Client, db: Conn, acme: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event whose normalising fails is stored and its reprocess job enqueued; while Redis hangs on that,
    other webhooks are still written and answered (the writer thread only ever waits for Postgres)."""
    silent = SilentRedis()
    monkeypatch.setenv("REDIS_URL", silent.url)
    get_settings.cache_clear()
    other = seed_instance(db, "other", instance="other-main", number="+5511944440000")
    for seeded in (acme, other):  # cache both sessions
        r = client.post(WEBHOOK, content=incoming_text("warm", instance=seeded.instance), headers=seeded.headers())
        assert r.status_code == 200
    db.execute("delete from t_numbers where id = %s", (other.number_id,))  # other's next event cannot normalise
    db.commit()

    async def run() -> tuple[httpx.Response, bool, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mirage.test") as c:
            bad = incoming_text("stale number", "BAD1", instance=other.instance)
            deferred = asyncio.create_task(c.post(WEBHOOK, content=bad, headers=other.headers()))
            assert await asyncio.to_thread(silent.accepted.wait, 10)  # enqueueing its job: Redis does not answer
            meanwhile = await c.post(WEBHOOK, content=incoming_text("meanwhile", "GOOD1"), headers=acme.headers())
            still_hung = silent.first_still_open()
            silent.close()
            return meanwhile, still_hung, await deferred

    try:
        meanwhile, still_hung, deferred = asyncio.run(run())
    finally:
        silent.close()
    assert meanwhile.json()["status"] == "processed"
    assert still_hung, "the webhook waited for the hung Redis"
    assert deferred.status_code == 200 and deferred.json()["status"] == "stored"
