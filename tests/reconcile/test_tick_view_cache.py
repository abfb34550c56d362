"""The tick's cache of effective views (ADR 0045): a tick with nothing changed reuses every view and reads only
the dynamic state; any change to a tenant's configuration (by `mirage apply` or by hand) or to its numbers makes
the next tick build that tenant's views again, equal to views built from scratch; rounds are never cached.

Real Postgres (the fixture fleet applied with `mirage apply`) and Redis (the quota counters).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib

from mirage.engine.rounds import Skip
from mirage.jobs.conversations import reschedule_conversation
from mirage.jobs.quota import QuotaCounter
from mirage.jobs.runtime import since_for_snapshot
from mirage.jobs.viewcache import ViewCache, Views, plan_tick
from tests.reconcile.helpers import edit, mirage

Conn = psycopg.Connection[Any]
MONDAY_0900_SP = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _apply(fleet: Path) -> None:
    result = mirage("apply", fleet, "--yes", "--allow-delete")
    assert result.exit_code == 0, result.output


def _load(cache: ViewCache, conn: Conn) -> Views:
    try:
        return cache.load(conn, since_for_snapshot(MONDAY_0900_SP))
    finally:
        conn.rollback()  # each tick is its own transaction


def _fresh(conn: Conn) -> Views:
    """What a cron process that just started would build."""
    return _load(ViewCache(), conn)


def _write(conn: Conn, sql: str) -> None:
    conn.execute(sql)
    conn.commit()


def test_a_tick_with_nothing_changed_reuses_every_view_and_reads_only_the_dynamic_state(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    cache = ViewCache()
    first, second = _load(cache, env), _load(cache, env)
    assert (first.rebuilt, first.queries) == (1, 11)
    assert (second.rebuilt, second.queries) == (0, 4)
    assert len(second.views) == 1 and second.views[0] is first.views[0]
    _apply(fleet)  # an apply with nothing to change writes nothing: the views stay
    assert _load(cache, env).rebuilt == 0


@pytest.mark.parametrize(
    ("path", "old", "new", "changed"),
    [
        (
            "conversations/bom-dia.yaml",
            "exchanges: {min: 2, max: 4}",
            "exchanges: {min: 3, max: 3}",
            lambda v: (v.exchanges_min, v.exchanges_max) == (3, 3),
        ),
        (
            "conversations/bom-dia.yaml",
            "  tempo: {seed: O calor que está fazendo}\n",
            "",
            lambda v: [t.key for t in v.topics] == ["futebol"],
        ),
        (
            "conversations/bom-dia.yaml",
            "{a: joao, b: maria, starts: a}",
            "{a: joao, b: maria, starts: b}",
            lambda v: v.pairs[0].starts == "b",
        ),
        (
            "tenant.yaml",
            'quiet_hours: {start: "22:00", end: "07:00"}',
            'quiet_hours: {start: "21:00", end: "06:00"}',
            lambda v: str(v.quiet[0]) == "21:00:00",
        ),
        (
            "tenant.yaml",
            'morning: {start: "08:00", end: "11:30"}',
            'morning: {start: "09:00", end: "10:00"}',
            lambda v: str(v.day("mon").windows[0].start) == "09:00:00",
        ),
        (
            "tenant.yaml",
            "max_delay_ms: 25000",
            "max_delay_ms: 30000",
            lambda v: v.settings.max_delay_ms == 30000,
        ),
    ],
    ids=["exchanges", "topic-removed", "who-starts", "quiet-hours", "window", "tenant-delay"],
)
def test_an_apply_that_changes_the_configuration_is_what_the_next_tick_plans_with(
    env: Conn, fleet: Path, path: str, old: str, new: str, changed: Any
) -> None:
    _apply(fleet)
    cache = ViewCache()
    [before] = _load(cache, env).views
    assert not changed(before)
    edit(fleet / "padaria" / path, old, new)
    _apply(fleet)
    after = _load(cache, env)
    assert after.rebuilt == 1
    assert changed(after.views[0])
    assert after.views == _fresh(env).views


def test_a_deactivated_conversation_leaves_the_next_tick(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    cache = ViewCache()
    assert len(_load(cache, env).views) == 1
    edit(fleet / "padaria" / "conversations" / "bom-dia.yaml", "mode: pair", "mode: pair\nactive: false")
    _apply(fleet)
    assert _load(cache, env).views == []


@pytest.mark.parametrize(
    "sql",
    [
        "update t_settings_tenant set hourly_burst_limit = 7",
        "update t_personas set style = 'seco'",
        "update t_conversations set topic_refresh_minutes = 30",
        "update t_settings_conversation set min_delay_ms = 1234",
        "update t_conversation_schedule set max_rounds_per_window = 5",
        "delete from t_conversation_participants where role = 'responder'",
        "update t_pairings set starts = 'b'",
        "insert into t_topics (tenant_id, conversation_id, key, seed) select tenant_id, id, 'novo', 'x' "
        "from t_conversations",
        "truncate t_topics",
    ],
    ids=[
        "tenant-settings",
        "persona",
        "conversation",
        "conversation-settings",
        "schedule",
        "participant",
        "pairing",
        "topic",
        "truncate",
    ],
)
def test_a_configuration_row_written_by_hand_also_renews_the_views(env: Conn, fleet: Path, sql: str) -> None:
    _apply(fleet)
    cache = ViewCache()
    before = _load(cache, env)
    _write(env, sql)
    after = _load(cache, env)
    assert after.rebuilt == 1
    fresh = _fresh(env)
    assert (after.views, after.skipped) == (fresh.views, fresh.skipped)
    assert (after.views, after.skipped) != (before.views, before.skipped)


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("update t_numbers set status = 'close' where key = 'maria'", "is close"),
        ("update t_numbers set paused_reason = 'ban 403' where key = 'maria'", "is paused"),
        ("update t_numbers set active = false where key = 'maria'", "not an active participant"),
    ],
    ids=["disconnected", "paused", "deactivated"],
)
def test_a_number_status_is_read_every_tick(env: Conn, fleet: Path, redis: redis_lib.Redis, sql: str, why: str) -> None:
    _apply(fleet)
    _write(env, "update t_numbers set status = 'open'")
    cache = ViewCache()
    [open_view] = _load(cache, env).views
    assert all(n.can_send for n in open_view.numbers.values())
    _write(env, sql)
    after = _load(cache, env)
    assert after.rebuilt == 1
    fresh = _fresh(env)
    assert (after.views, after.skipped) == (fresh.views, fresh.skipped)
    decisions = plan_tick(after, MONDAY_0900_SP, random.Random(1), QuotaCounter(redis).used)
    reasons = [d.reason for d in decisions if isinstance(d, Skip)] + [s[2] for s in after.skipped]
    assert len(reasons) == 1 and why in reasons[0], reasons


def test_rounds_and_their_abort_by_reschedule_are_read_every_tick(
    env: Conn, fleet: Path, redis: redis_lib.Redis
) -> None:
    _apply(fleet)
    _write(env, "update t_numbers set status = 'open'")
    cache = ViewCache()
    used = QuotaCounter(redis).used
    loaded = _load(cache, env)
    assert not isinstance(plan_tick(loaded, MONDAY_0900_SP, random.Random(1), used)[0], Skip)
    _write(
        env,
        "insert into t_rounds (tenant_id, conversation_id, status, created_at) "
        "select tenant_id, id, 'planned', '2026-12-07 11:55+00' from t_conversations",
    )
    loaded = _load(cache, env)
    [running] = plan_tick(loaded, MONDAY_0900_SP, random.Random(1), used)
    assert loaded.rebuilt == 0 and isinstance(running, Skip) and running.reason == "a round is running"
    conversation = env.execute("select id::text from t_conversations").fetchone()
    env.rollback()
    assert reschedule_conversation(conversation["id"])["aborted"] == 1
    loaded = _load(cache, env)
    [pausing] = plan_tick(loaded, MONDAY_0900_SP, random.Random(1), used)
    assert loaded.rebuilt == 0 and isinstance(pausing, Skip) and pausing.reason == "pausing between rounds"


def test_an_archived_tenant_leaves_the_cache(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    cache = ViewCache()
    assert len(_load(cache, env).views) == 1
    _write(env, "update t_tenants set archived_at = '2026-12-07'")
    after = _load(cache, env)
    assert (after.views, after.rebuilt) == ([], 0)


@pytest.mark.parametrize(
    ("at", "counters"),
    [
        (MONDAY_0900_SP, 4),  # inside the morning window: both numbers' hour and day counters
        (datetime(2026, 12, 7, 6, 0, tzinfo=UTC), 0),  # 03:00 in São Paulo: quiet hours
        (datetime(2026, 12, 7, 16, 0, tzinfo=UTC), 0),  # 13:00: between the windows
    ],
    ids=["window-open", "quiet-hours", "no-window"],
)
def test_quota_counters_are_read_only_for_conversations_the_cheap_checks_let_through(
    env: Conn, fleet: Path, redis: redis_lib.Redis, at: datetime, counters: int
) -> None:
    _apply(fleet)
    _write(env, "update t_numbers set status = 'open'")
    asked: list[str] = []

    def used(keys: list[str]) -> list[int]:
        asked.extend(keys)
        return QuotaCounter(redis).used(keys)

    loaded = _load(ViewCache(), env)
    plan_tick(loaded, at, random.Random(1), used)
    assert len(asked) == counters and all(k.startswith("mirage:quota:") for k in asked)


@pytest.mark.parametrize("n", [0, 1, 3_999, 4_000, 9_001])
def test_quota_counters_read_at_once_are_the_stored_values_in_order_missing_ones_zero(
    redis: redis_lib.Redis, n: int
) -> None:
    keys = [f"mirage:quota:number-{i}:h:2026120712" for i in range(n)]
    for i in range(0, n, 3):
        redis.set(keys[i], i)
    assert QuotaCounter(redis).used(keys) == [i if i % 3 == 0 else 0 for i in range(n)]
