"""What one send costs in Postgres round trips (ADR 0057), counted, never timed: the statements each send step
executes and the transactions it commits, on real Postgres, Redis and the simulator over HTTP."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpcore
import httpx
import psycopg
import pytest

from mirage.db import outbox
from mirage.engine.quotas import buckets
from mirage.integrations.evolution import client
from mirage.jobs.runtime import db, tx
from mirage.jobs.send import send_message, send_typed
from tests.evolution.helpers import wait_until
from tests.runtime.conftest import Harness

# step 1: begin + the context with the session and the message it answers, one commit.
# step 2: (begin + context + claim, the quota taken in Redis in between), (begin + mark_sent): two transactions.
STEP_1 = {"statements": 2, "commits": 1}
STEP_2 = {"statements": 5, "commits": 2}
REBUILD = {"statements": 1, "commits": 0}  # per quota counter Redis lost, counted in the claim's transaction

_WEBHOOK_ROWS = (
    "select count(*) as n from t_messages where direction = 'out' and idempotency_key is null and wa_msg_id = %s"
)


@contextmanager
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Statements executed and transactions committed by this thread (the webhook service runs in others)."""
    seen: Counter[str] = Counter()
    me = threading.get_ident()
    execute, commit = psycopg.Cursor.execute, psycopg.Connection.commit

    def counted_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == me and not seen["paused"]:
            seen["statements"] += 1
        return execute(self, *args, **kwargs)

    def counted_commit(self: Any) -> None:
        if threading.get_ident() == me and not seen["paused"]:
            seen["commits"] += 1
        commit(self)

    with monkeypatch.context() as m:
        m.setattr(psycopg.Cursor, "execute", counted_execute)
        m.setattr(psycopg.Connection, "commit", counted_commit)
        yield seen


def _mark_sent_after_the_webhook(h: Harness, monkeypatch: pytest.MonkeyPatch, seen: Counter[str]) -> None:
    """Evolution's `send.message` webhook races the worker's `sent`; when it commits in the middle of that
    statement, the statement is retried (a unique key). Let it land first (uncounted): the fold is then part of
    the one statement counted."""
    record = outbox.mark_sent

    def after_the_webhook(c: Any, message_id: str, session_id: Any, wa_msg_id: Any, now: Any) -> None:
        seen["paused"] = 1
        wait_until(lambda: h.count(_WEBHOOK_ROWS, wa_msg_id) == 1)
        del seen["paused"]
        record(c, message_id, session_id, wa_msg_id, now)

    monkeypatch.setattr(outbox, "mark_sent", after_the_webhook)


def _queued(h: Harness) -> dict[str, Any]:
    h.tick()
    h.work()  # the round's first message is queued, its send scheduled after the think delay
    rows = h.rows("select id::text, from_number_id::text from t_messages where status = 'queued'")
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("counters_lost", [0, 2], ids=["quota-counters-kept", "redis-lost-both-counters"])
def test_a_send_costs_a_fixed_small_number_of_statements_and_transactions(
    make_harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch, counters_lost: int
) -> None:
    h = make_harness()
    message = _queued(h)
    now = h.clock.advance(timedelta(minutes=1))
    hour, day = buckets(
        message["from_number_id"], now, "America/Sao_Paulo", hourly_limit=30, tenant_daily_limit=200,
        warmup_started_on=None,
    )  # fmt: skip
    h.redis.delete(hour.key, day.key)
    for key in (hour.key, day.key)[counters_lost:]:
        h.redis.set(key, 0)

    with counting(monkeypatch) as step_1:
        assert send_message(message["id"]).startswith("typing")
    with counting(monkeypatch) as step_2:
        _mark_sent_after_the_webhook(h, monkeypatch, step_2)
        assert send_typed(message["id"]) == "sent"

    assert dict(step_1) == STEP_1
    assert dict(step_2) == {k: v + counters_lost * REBUILD[k] for k, v in STEP_2.items()}
    assert h.sends() == 1
    row = h.rows("select status::text, wa_msg_id from t_messages where id = %s", message["id"])[0]
    assert row["status"] in ("sent", "delivered", "read") and row["wa_msg_id"]
    assert int(h.redis.get(hour.key) or 0) == 1 and int(h.redis.get(day.key) or 0) == 1


def test_sends_reuse_one_kept_alive_connection_to_evolution(
    make_harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    h = make_harness()
    # A long keep-alive expiry, so a slow shared machine cannot turn this count into a timing test.
    monkeypatch.setattr(client, "_LIMITS", httpx.Limits(keepalive_expiry=600))
    client.close_pool()
    pool = client.pooled_http(h.sim.url)._transport._pool  # type: ignore[attr-defined]
    made: Counter[str] = Counter()
    create, handle = httpcore.ConnectionPool.create_connection, httpcore.ConnectionPool.handle_request

    def counted_create(self: Any, *args: Any) -> Any:
        made["connections"] += self is pool
        return create(self, *args)

    def counted_handle(self: Any, *args: Any) -> Any:
        made["requests"] += self is pool
        return handle(self, *args)

    monkeypatch.setattr(httpcore.ConnectionPool, "create_connection", counted_create)
    monkeypatch.setattr(httpcore.ConnectionPool, "handle_request", counted_handle)
    h.run_until(h.clock.now() + timedelta(minutes=30))  # a round: read receipts, "typing…" and sends of both bots
    assert h.sends() >= 2
    assert made["requests"] >= 2 * h.sends() and made["connections"] == 1


def test_mark_sent_folds_the_webhook_row_stored_first_in_its_one_statement(
    make_harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    h = make_harness()
    message = _queued(h)
    h.clock.advance(timedelta(minutes=1))
    send_message(message["id"])
    assert send_typed(message["id"]) == "sent"
    h.settle()
    sent = h.rows("select session_id::text, wa_msg_id, tenant_id from t_messages where id = %s", message["id"])[0]
    # As if Evolution's `send.message` webhook (delivered already) was stored before the worker recorded `sent`.
    h.db.execute(
        "update t_messages set status = 'sending', wa_msg_id = null, delivered_at = null, read_at = null where id = %s",
        (message["id"],),
    )
    h.db.execute(
        "insert into t_messages (tenant_id, from_number_id, session_id, direction, body, status, wa_msg_id, "
        "delivered_at) values (%s, %s, %s, 'out', 'x', 'delivered', %s, %s)",
        (sent["tenant_id"], message["from_number_id"], sent["session_id"], sent["wa_msg_id"], h.clock.now()),
    )
    h.db.commit()
    with db() as conn, counting(monkeypatch) as seen, tx(conn) as c:
        outbox.mark_sent(c, message["id"], sent["session_id"], sent["wa_msg_id"], h.clock.now())
    assert dict(seen) == {"statements": 2, "commits": 1}  # begin, the fold with its update: no retry needed
    rows = h.rows(
        "select id::text, status::text, delivered_at from t_messages where direction = 'out' and wa_msg_id = %s",
        sent["wa_msg_id"],
    )
    assert [(r["id"], r["status"]) for r in rows] == [(message["id"], "delivered")] and rows[0]["delivered_at"]


def test_without_typing_time_step_1_sends_at_once_in_three_transactions(
    make_harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    h = make_harness()
    h.db.execute("update t_settings_tenant set humanize = false where tenant_id = %s", (h.tenant_id,))
    h.db.execute("update t_settings_conversation set humanize = null where tenant_id = %s", (h.tenant_id,))
    h.db.commit()
    message = _queued(h)
    now = h.clock.advance(timedelta(minutes=1))
    hour, day = buckets(
        message["from_number_id"], now, "America/Sao_Paulo", hourly_limit=30, tenant_daily_limit=200,
        warmup_started_on=None,
    )  # fmt: skip
    h.redis.set(hour.key, 0)
    h.redis.set(day.key, 0)
    with counting(monkeypatch) as seen:
        _mark_sent_after_the_webhook(h, monkeypatch, seen)
        assert send_message(message["id"]) == "sent"
    # (begin + context with the session), (begin + claim), (begin + mark_sent)
    assert dict(seen) == {"statements": 6, "commits": 3}
    assert h.sends() == 1 and int(h.redis.get(hour.key) or 0) == 1
