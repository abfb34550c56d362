"""Issue 11's acceptance behaviours against real Postgres, Redis, the simulator over HTTP and the webhook app."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis as redis_lib
from psycopg.types.json import Jsonb

from mirage.db import outbox
from mirage.jobs import queues
from mirage.jobs.rounds import conversation_tick
from mirage.jobs.send import send_message, send_typed
from tests.evolution.helpers import wait_until
from tests.runtime.conftest import PHONES, Harness, InProcessWorker

FORK = multiprocessing.get_context("fork")


def _first_queued_message(h: Harness) -> str:
    h.tick()
    h.work()  # advance_round: step 0 queued, its send scheduled after the think delay
    rows = h.rows("select id::text from t_messages where status = 'queued'")
    assert len(rows) == 1
    return str(rows[0]["id"])


def test_two_ticks_at_once_create_one_round(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    barrier = threading.Barrier(4)
    results: list[dict[str, int]] = []

    def tick() -> None:
        barrier.wait()
        results.append(conversation_tick())

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["created"] for r in results) == 1
    assert h.count("select count(*) as n from t_rounds") == 1
    assert conversation_tick()["created"] == 0  # a re-run tick adds nothing either


def _work_messages(redis_url: str) -> None:
    conn = redis_lib.Redis.from_url(redis_url)
    InProcessWorker([queues.queue(queues.MESSAGES, conn)], connection=conn).work(burst=True, with_scheduler=False)


def test_four_workers_racing_on_one_message_send_it_once(make_harness: Callable[..., Harness], redis_url: str) -> None:
    h = make_harness()
    message_id = _first_queued_message(h)
    h.clock.advance(timedelta(minutes=1))
    # Four copies of the claiming step (as after retries and a sweeper), four worker processes.
    for i in range(4):
        queues.enqueue_unique(queues.MESSAGES, "mirage.jobs.send.send_typed", job_id=f"dup:{i}", args=[message_id])
    workers = [FORK.Process(target=_work_messages, args=(redis_url,)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert h.sends() == 1
    wait_until(
        lambda: h.rows("select status::text from t_messages where id = %s", message_id)[0]["status"] != "sending"
    )
    assert h.count("select count(*) as n from t_messages where direction = 'out'") == 1


def _send_then_die(message_id: str, ready: Any) -> None:
    """A worker that is killed right after Evolution accepted the send (before it could record `sent`)."""

    def stall(*args: Any, **kwargs: Any) -> None:
        ready.set()
        time.sleep(3600)

    outbox.mark_sent = stall  # type: ignore[assignment]
    send_typed(message_id)


def test_a_worker_killed_after_evolution_accepted_never_sends_again_and_the_webhook_settles_it(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    message_id = _first_queued_message(h)
    h.clock.advance(timedelta(minutes=1))
    ready = FORK.Event()
    child = FORK.Process(target=_send_then_die, args=(message_id, ready))
    child.start()
    assert ready.wait(30)
    os.kill(child.pid or 0, signal.SIGKILL)
    child.join(10)
    posts = h.sends()
    assert posts == 1
    # RQ runs the job again (at-least-once): the row is no longer `queued`, nothing is POSTed.
    assert send_typed(message_id).startswith("already")
    assert send_message(message_id).startswith("already")  # nor read / "typing…" again
    h.settle()  # the send.message webhook's follow-up settles the row
    row = h.rows("select status::text, wa_msg_id, meta from t_messages where id = %s", message_id)[0]
    assert row["status"] in ("sent", "delivered", "read") and row["wa_msg_id"]
    assert row["meta"].get("settled_by") == "webhook"
    assert h.sends() == posts
    # the webhook's own row was folded into the outbox row: one row for the one send
    assert h.count("select count(*) as n from t_messages where direction = 'out' and idempotency_key is null") == 0


def test_redis_flushed_mid_day_rebuilds_the_counters_and_limits_hold(
    make_harness: Callable[..., Harness], redis: redis_lib.Redis
) -> None:
    from mirage.engine.quotas import buckets
    from mirage.jobs.quota import HOUR_FULL, TAKEN, QuotaCounter
    from mirage.jobs.runtime import db, tx

    h = make_harness(hourly=5)
    number = str(h.numbers["bot1"])
    now = h.clock.advance(timedelta(minutes=30))  # 08:30: the hour began at 08:00
    for i in range(3):  # three messages already left this hour
        h.db.execute(
            "insert into t_messages (tenant_id, from_number_id, direction, body, status, sent_at, idempotency_key) "
            "values (%s, %s, 'out', %s, 'sent', %s, %s)",
            (h.tenant_id, number, f"old {i}", now - timedelta(minutes=10 + i), f"old:{i}"),
        )
    h.db.commit()
    hour, day = buckets(
        number, now, "America/Sao_Paulo", hourly_limit=5, tenant_daily_limit=200, warmup_started_on=None
    )

    def truth(start: Any, end: Any) -> int:
        with db() as conn, tx(conn) as c:
            return outbox.counted_since(c, number, start, end)

    redis.flushdb()  # Redis restarted mid-day
    results: list[int] = []
    barrier = threading.Barrier(8)

    def take() -> None:
        counter = QuotaCounter(h.redis)
        barrier.wait()
        results.append(counter.take(number, hour, day, truth))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(TAKEN) == 2 and results.count(HOUR_FULL) == 6
    assert int(redis.get(hour.key) or 0) == 5


def test_a_number_disconnected_mid_round_sends_nothing_more_and_the_round_aborts(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(exchanges=(3, 3))
    h.tick()
    # run until the first message reached bot2, then bot2's phone is logged out (401)
    deadline = h.clock.now() + timedelta(minutes=10)
    while h.count("select count(*) as n from t_messages where direction = 'in'") == 0 and h.clock.now() < deadline:
        h.settle()
        upcoming = h.next_scheduled()
        h.clock.set(max(h.clock.now(), upcoming or h.clock.now() + timedelta(seconds=30)))
    speaker = h.rows("select number_a_id::text, number_b_id::text from t_rounds")[0]
    responder_key = next(k for k, v in h.numbers.items() if str(v) == speaker["number_b_id"])
    h.sim.disconnect(f"mirage-acme-{responder_key}", 401)
    wait_until(lambda: h.count("select count(*) as n from t_numbers where status <> 'open'") == 1)
    before = h.sends()
    h.run_until(h.clock.now() + timedelta(minutes=20), tick_every=timedelta(minutes=5))
    assert h.sends() == before
    r = h.rows("select status::text, abort_reason from t_rounds order by created_at")[0]
    assert r["status"] == "aborted" and responder_key in r["abort_reason"], r
    paused = h.rows("select paused_reason from t_numbers where key = %s", responder_key)[0]
    assert paused["paused_reason"] and "401" in paused["paused_reason"]


def test_a_bot_message_out_of_turn_is_stored_ignored_and_answered_by_nothing(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    with h.sim.client() as client:  # bot1's phone writes to bot2 with no round running
        token = h.sim.world.instances["mirage-acme-bot1"].token
        client.send_text("mirage-acme-bot1", PHONES[1], "oi, sumido!", token=token)
    wait_until(lambda: h.count("select count(*) as n from t_messages where direction = 'in'") == 1)
    h.settle()
    row = h.rows("select meta, round_id from t_messages where direction = 'in'")[0]
    assert row["meta"]["ignored_reason"] == "no_active_round" and row["round_id"] is None
    assert h.count("select count(*) as n from t_messages where idempotency_key is not null") == 0
    assert h.sends() == 1  # only the phone's own message


def test_bad_configuration_rows_skip_that_conversation_with_one_log_line(
    make_harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    h = make_harness(numbers=3)
    broken = h.conversation_id
    h.db.execute(
        "update t_conversation_schedule set afternoon_enabled = true, afternoon_window = null "
        "where conversation_id = %s",
        (broken,),
    )
    # a second, valid conversation between bot3 and bot1 runs as usual; a third pairs with an inactive number
    good = _copy_conversation(h, "boa", ["bot3", "bot1"])
    stale = _copy_conversation(h, "velha", ["bot2", "bot3"])
    h.db.execute(
        "insert into t_pairings (tenant_id, conversation_id, number_a_id, number_b_id) values (%s, %s, %s, %s)",
        (h.tenant_id, stale, h.numbers["bot2"], h.numbers["bot3"]),
    )
    h.db.execute(
        "delete from t_conversation_participants where conversation_id = %s and number_id = %s",
        (stale, h.numbers["bot3"]),
    )
    h.db.commit()
    with caplog.at_level(logging.WARNING, logger="mirage.jobs.rounds"):
        result = h.tick()
    lines = [r.getMessage() for r in caplog.records if "conversation skipped" in r.getMessage()]
    assert len(lines) == 2, lines
    assert any("acme/papo: " in line and "afternoon window is enabled but has no start/end" in line for line in lines)
    assert any("acme/velha: pairing bot2-bot3 names number bot3, not an active participant" in line for line in lines)
    assert result["created"] == 1
    assert h.rows("select conversation_id from t_rounds")[0]["conversation_id"] == good


def _copy_conversation(h: Harness, key: str, numbers: list[str]) -> Any:
    cid = h.db.execute(
        "insert into t_conversations (tenant_id, key, name, exchanges_min, exchanges_max) "
        "values (%s, %s, %s, 2, 2) returning id",
        (h.tenant_id, key, key),
    ).fetchone()["id"]
    for order, n in enumerate(numbers):
        h.db.execute(
            "insert into t_conversation_participants (tenant_id, conversation_id, participant_kind, number_id, "
            "start_order) values (%s, %s, 'bot', %s, %s)",
            (h.tenant_id, cid, h.numbers[n], order),
        )
    h.db.execute(
        "insert into t_conversation_schedule (tenant_id, conversation_id, day, morning_enabled, morning_window) "
        "values (%s, %s, 'mon', true, %s)",
        (h.tenant_id, cid, Jsonb({"start": "08:00", "end": "11:00"})),
    )
    h.db.commit()
    return cid
