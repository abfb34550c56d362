"""Views built the ADR 0058 way (per-tenant `TenantViews`, schedules loaded as one JSON text per conversation and
read once per distinct text) equal, in the same order, what the builder before it produced from the rows as it
loaded them (tests/reconcile/views_before.py, the old code copied): for the shipped examples (tenants.d), the
bench's generated fleets (bench/engine.py's tick fleet, bench/simulate.py's agencies), each as applied and with
hand edits that give conversations their own overrides and make some rows bad (skipped with the same reason).

Real Postgres; fleets written with `mirage apply` or the bench's own bulk INSERTs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest

from mirage.db import rounds as db_rounds
from mirage.jobs.runtime import build_views, since_for_snapshot
from tests.reconcile import views_before
from tests.reconcile.helpers import mirage

Conn = psycopg.Connection[Any]
ROOT = Path(__file__).resolve().parents[2]
SINCE = since_for_snapshot(datetime(2026, 12, 7, 12, 0, tzinfo=UTC))

# The schedule rows as the builder before ADR 0058 loaded them: one row per day, in day order.
_OLD_SCHEDULE = (
    "select conversation_id::text, day::text, morning_enabled, morning_window, afternoon_enabled, afternoon_window, "
    "evening_enabled, evening_window, max_rounds_per_window, pause_between_rounds_min, pause_between_rounds_max "
    "from t_conversation_schedule order by day"
)


def _bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _apply(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLUTION_API_KEY", "evo-example-global-key-01")
    monkeypatch.setenv("EVOLUTION_BASE_URL", "http://evolution.example:8080")
    result = mirage("apply", path, "--yes")
    assert result.exit_code == 0, result.output


def examples(conn: Conn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _apply(ROOT / "tenants.d", monkeypatch)


def simulate_agencies(conn: Conn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench("simulate")
    for t in range(4):
        bench.agency(tmp_path, t)
    _apply(tmp_path, monkeypatch)


def engine_tick_fleet(conn: Conn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = conn.info.dsn
    _bench("engine")._fill(url, 1, 12, 20)  # 12 tenants x 20 conversations, the bench's rows


def _first(conn: Conn, sql: str) -> str:
    row = conn.execute(sql).fetchone()
    assert row is not None, sql
    return str(next(iter(row.values())))


def overrides_and_bad_rows(conn: Conn) -> tuple[list[str], list[str]]:
    """Conversations with their own settings (some only a floor above the tenant's ceiling), topics with dates and
    weights, a responder, a paused and an inactive number, and bad rows: a window enabled without times, one ending
    before it starts and, with three tenants or more, a tenant in an unknown time zone and one with unreadable quiet
    hours. Returns the reasons the bad rows must be skipped for, and the two conversations with overrides."""
    tenants = [r["id"] for r in conn.execute("select id::text from t_tenants order by slug").fetchall()]
    bad_tenants = tenants[-2:] if len(tenants) >= 3 else []
    conversations = [
        r["id"]
        for r in conn.execute(
            "select id::text from t_conversations where tenant_id <> all(%s::uuid[]) order by tenant_id, key",
            (bad_tenants,),
        ).fetchall()
    ]
    assert len(conversations) >= 4
    floor, full = [conversations[0]], [conversations[1]]  # stay runnable: the test finds them in the views
    statements: list[tuple[str, Any]] = [
        (
            "insert into t_settings_conversation (tenant_id, conversation_id) select tenant_id, id "
            "from t_conversations where id not in (select conversation_id from t_settings_conversation)",
            (),
        ),
        (
            "update t_settings_conversation set min_delay_ms = 90000, max_delay_ms = null "
            "where conversation_id = any(%s::uuid[])",
            (floor,),
        ),
        (
            "update t_settings_conversation set min_delay_ms = 1500, max_delay_ms = 6000, humanize = false, "
            "hourly_burst_limit = 7, allow_bot_to_bot = false, guard_no_echo = false "
            "where conversation_id = any(%s::uuid[])",
            (full,),
        ),
        (
            "update t_topics set active_from = '2026-12-01', active_to = '2026-12-31', weight = 3 "
            "where conversation_id = any(%s::uuid[])",
            (full,),
        ),
        (
            "update t_conversation_participants set role = 'responder' where id = (select id from "
            "t_conversation_participants where conversation_id = %s order by start_order desc limit 1)",
            (conversations[0],),
        ),
        (
            "update t_numbers set paused_reason = 'connection close (401)', paused_at = '2026-12-06' "
            "where id = (select id from t_numbers order by key desc limit 1)",
            (),
        ),
        (
            "update t_numbers set active = false where id = (select id from t_numbers where id not in (select "
            "number_id from t_conversation_participants where conversation_id = any(%s::uuid[]) and number_id is not "
            "null) order by tenant_id, key limit 1)",
            (floor + full,),
        ),
        (
            "update t_conversation_schedule set morning_enabled = true, morning_window = null "
            "where conversation_id = %s",
            (conversations[2],),
        ),
        (
            "update t_conversation_schedule set afternoon_enabled = true, "
            'afternoon_window = \'{"start": "17:00", "end": "14:00"}\' where conversation_id = %s',
            (conversations[3],),
        ),
    ]
    reasons = ["has no start/end", "ends before it starts"]
    if bad_tenants:
        statements += [
            ("update t_tenants set timezone = 'Mars/Olympus' where id = %s", (bad_tenants[0],)),
            ('update t_settings_tenant set quiet_hours = \'{"start": "22h"}\' where tenant_id = %s', (bad_tenants[1],)),
        ]
        reasons += ["unknown time zone", "quiet hours unreadable"]
    for sql, params in statements:
        conn.execute(sql, params)
    conn.commit()
    return reasons, floor + full


def _old_rows(conn: Conn, snap: db_rounds.Snapshot) -> Any:
    """The same snapshot with each conversation's schedule as the rows the builder before loaded."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(_OLD_SCHEDULE).fetchall():
        rows.setdefault(r["conversation_id"], []).append(r)
    for cid, c in snap.conversations.items():
        c.schedule = rows.get(cid, [])  # type: ignore[assignment]
    return snap


@pytest.mark.parametrize("edited", [False, True], ids=["as-applied", "overrides-and-bad-rows"])
@pytest.mark.parametrize("fleet", [examples, simulate_agencies, engine_tick_fleet], ids=lambda f: f.__name__)
def test_views_equal_what_the_builder_before_produced_in_the_same_order(
    env: Conn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fleet: Callable[[Conn, Path, pytest.MonkeyPatch], None],
    edited: bool,
) -> None:
    fleet(env, tmp_path, monkeypatch)
    reasons, edited_ids = overrides_and_bad_rows(env) if edited else ([], [])
    new_views, new_skipped = build_views(db_rounds.load_snapshot(env, SINCE))
    old_views, old_skipped = views_before.build_views(_old_rows(env, db_rounds.load_snapshot(env, SINCE)))
    env.rollback()
    assert new_views
    assert new_skipped == old_skipped
    assert [v.id for v in new_views] == [v.id for v in old_views]
    for new, old in zip(new_views, old_views, strict=True):
        assert new == old, new.key
        assert list(new.week) == list(old.week)  # the weekdays in the same order, too
    if edited:  # the overrides reached the views compared
        by_rank = {v.id: v for v in new_views}
        floor, full = (by_rank[cid] for cid in edited_ids)
        assert (floor.settings.min_delay_ms, floor.settings.max_delay_ms) == (90000, 90000)
        assert (full.settings.min_delay_ms, full.settings.humanize, full.settings.guard_no_echo) == (1500, False, False)
        assert {t.weight for t in full.topics} == {3}
    skipped_for = " / ".join(r for _, _, r in new_skipped)
    assert all(reason in skipped_for for reason in reasons), skipped_for
    assert bool(new_skipped) == edited
