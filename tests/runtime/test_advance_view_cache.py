"""The worker's cache of effective views (ADR 0056): a warm advance finds its conversation's view with one
statement (its tenant's version, settings and numbers), and a changed configuration, number, conversation or
tenant is what the next advance sees: views equal to a fresh build, outcomes the same as without the cache. Each
process has its own cache; the version in Postgres is the truth for all of them. Statement counts, never time.

Real Postgres and Redis (the send jobs an advance schedules); no Evolution: the advance only queues messages.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import psycopg
import pytest
import redis as redis_lib

from mirage.db import rounds as db_rounds
from mirage.db.connect import connect
from mirage.engine.clock import SettableClock
from mirage.engine.view import ConversationView
from mirage.jobs import conversation_views, runtime
from mirage.jobs.conversation_views import INACTIVE, ConversationViews, Lookup
from mirage.jobs.rounds import _advance, conversation_tick, on_message
from tests.evolution.helpers import make_number, make_tenant
from tests.runtime.conftest import MONDAY_0800_SP, PHONES, Harness, seed_conversation

Conn = psycopg.Connection[Any]


@dataclass
class Fleet:
    db: Conn
    tenant_id: str
    conversation_id: str
    numbers: dict[str, str]
    cache: ConversationViews  # this process's (installed as conversation_views.VIEWS)

    def write(self, sql: str, *params: Any) -> None:
        self.db.execute(sql, params)
        self.db.commit()

    def one(self, sql: str, *params: Any) -> dict[str, Any]:
        self.db.commit()
        row = self.db.execute(sql, params).fetchone()
        self.db.commit()
        assert row is not None, sql
        return cast(dict[str, Any], row)

    def lookup(self, cache: ConversationViews | None = None) -> Lookup:
        with runtime.db() as conn, runtime.tx(conn) as c:
            return (cache or self.cache).view(c, self.tenant_id, self.conversation_id)

    def fresh(self) -> ConversationView | str:
        """What a worker that just started would find."""
        return self.lookup(ConversationViews()).view

    def new_round(self) -> str:
        assert conversation_tick()["created"] == 1
        return str(self.one("select id::text from t_rounds where status = 'planned'")["id"])

    def step_reached_the_other_bot(self, round_id: str, step: int) -> str:
        """Store the other bot's copy of the round's message of `step`, as the webhook ingest does; its id."""
        sent = self.one(
            "select tenant_id, body, from_number_id, to_number_id from t_messages where round_id = %s "
            "and (meta->>'step')::int = %s",
            round_id,
            step,
        )
        return str(
            self.one(
                "insert into t_messages (tenant_id, direction, from_number_id, to_number_id, body, status) "
                "values (%s, 'in', %s, %s, %s, 'received') returning id::text",
                sent["tenant_id"],
                sent["from_number_id"],
                sent["to_number_id"],
                sent["body"],
            )["id"]
        )


@pytest.fixture
def fleet(db: Conn, redis: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    """A tenant with two open bot numbers in one pair conversation (3 exchanges), at 08:00 on a Monday."""
    clock = SettableClock(MONDAY_0800_SP)
    monkeypatch.setattr(runtime, "clock", lambda: clock)
    cache = ConversationViews()
    monkeypatch.setattr(conversation_views, "VIEWS", cache)
    tenant = make_tenant(db, base_url=None, api_key=None)
    h = Harness(db, redis, cast(Any, None), clock, tenant)
    for i, key in enumerate(("bot1", "bot2")):
        h.numbers[key] = make_number(db, tenant, key, PHONES[i])
    db.execute("update t_numbers set status = 'open'")
    seed_conversation(h, exchanges=(3, 3))
    yield Fleet(db, str(tenant), str(h.conversation_id), {k: str(v) for k, v in h.numbers.items()}, cache)


class Statements:
    """Counts the SQL statements this process sends (every psycopg cursor's execute)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[str] = []
        original = psycopg.Cursor.execute

        def execute(cur: psycopg.Cursor[Any], query: Any, params: Any = None, **kw: Any) -> Any:
            self.sent.append(str(query))
            return original(cur, query, params, **kw)

        monkeypatch.setattr(psycopg.Cursor, "execute", execute)

    def during(self, fn: Any, *args: Any) -> tuple[Any, list[str]]:
        start = len(self.sent)
        result = fn(*args)
        return result, self.sent[start:]


def test_a_warm_lookup_sends_one_statement_and_returns_the_view_it_kept(fleet: Fleet) -> None:
    cold, warm = fleet.lookup(), fleet.lookup()
    assert (cold.built, cold.queries) == (True, 8)
    assert (warm.built, warm.queries) == (False, 1)
    assert isinstance(warm.view, ConversationView) and warm.view is cold.view
    assert warm.view == fleet.fresh()


def test_a_warm_advance_sends_six_statements_and_reads_no_configuration_row(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    stmts = Statements(monkeypatch)
    round_id = fleet.new_round()
    outcome, cold = stmts.during(_advance, round_id)
    assert outcome == "step 0 queued"
    inbound = fleet.step_reached_the_other_bot(round_id, 0)
    outcome, warm = stmts.during(on_message, inbound)
    assert outcome == "turn passed: step 1: step 1 queued"
    # on_message: begin, the message, the live rounds, their messages, attach + pass the turn (5); the advance:
    # begin, the round, the view's key, the step's message if queued, the text's inputs, the enqueue (6).
    assert len(warm) == 11, warm
    configuration = ("t_personas", "t_conversation_schedule", "t_pairings", "t_topics", "t_conversation_participants")
    # the view's key names its numbers through the participants and pairings; no other statement reads them
    (key,) = [s for s in warm if "config_version" in s]
    assert not [s for s in warm if s != key and any(t in s for t in configuration)]
    assert len(cold) == len(warm) - 5 + 7 + 1  # no on_message; the view built (7 more); the round started
    queued = fleet.one("select body, meta from t_messages where idempotency_key = %s", f"round:{round_id}:1")
    assert queued["meta"]["step"] == 1 and queued["body"]


@pytest.mark.parametrize(
    "sql",
    [
        "update t_settings_tenant set hourly_burst_limit = 7",
        "update t_tenants set timezone = 'America/Manaus'",
        "update t_personas set style = 'seco'",
        "update t_conversations set topic_refresh_minutes = 30",
        "update t_settings_conversation set min_delay_ms = 1234",
        "update t_conversation_schedule set max_rounds_per_window = 5",
        "delete from t_conversation_participants where start_order = 1",
        "update t_topics set seed = 'a chuva de ontem'",
        "truncate t_topics",
    ],
    ids=[
        "tenant-settings",
        "tenant-zone",
        "persona",
        "conversation",
        "conversation-settings",
        "schedule",
        "participant",
        "topic",
        "truncate",
    ],
)
def test_a_configuration_change_between_two_advances_is_what_the_second_one_sees(fleet: Fleet, sql: str) -> None:
    before = fleet.lookup().view
    fleet.write(sql)
    after = fleet.lookup()
    assert after.built
    assert after.view == fleet.fresh()
    assert after.view != before


@pytest.mark.parametrize(
    ("sql", "outcome"),
    [
        ("update t_numbers set status = 'close' where key = '{sender}'", "aborted: number {sender} cannot send"),
        (
            "update t_numbers set paused_reason = 'ban 403' where key = '{sender}'",
            "aborted: number {sender} cannot send",
        ),
        ("update t_numbers set active = false where key = '{sender}'", "aborted: number {sender_id} cannot send"),
        ("update t_conversations set active = false", "aborted: conversation inactive"),
        ("delete from t_conversations", "aborted: conversation deleted"),
        ("update t_tenants set archived_at = '2026-12-07'", "aborted: conversation inactive"),
    ],
    ids=["number-closed", "number-paused", "number-deactivated", "conversation-inactive", "deleted", "archived"],
)
def test_a_change_between_two_advances_ends_the_round_as_without_the_cache(
    fleet: Fleet, sql: str, outcome: str
) -> None:
    round_id = fleet.new_round()
    assert _advance(round_id) == "step 0 queued"
    responder = fleet.one(
        "select n.key, n.id::text from t_rounds r join t_numbers n on n.id = r.number_b_id where r.id = %s", round_id
    )  # the number whose step 1 is due
    fleet.write("update t_rounds set exchanges_done = 1, turn_number_id = number_b_id where id = %s", round_id)
    fleet.write(sql.format(sender=responder["key"]))
    assert _advance(round_id).startswith(outcome.format(sender=responder["key"], sender_id=responder["id"]))
    status = fleet.one("select status::text, abort_reason from t_rounds where id = %s", round_id)
    assert status["status"] == "aborted"
    if "conversation deleted" not in outcome:
        assert fleet.lookup().view == fleet.fresh()  # the kept outcome is a fresh worker's


def test_a_deleted_tenant_ends_its_rounds_and_leaves_the_cache(fleet: Fleet) -> None:
    round_id = fleet.new_round()
    assert isinstance(fleet.lookup().view, ConversationView)
    fleet.write("delete from t_tenants where id = %s", fleet.tenant_id)
    assert _advance(round_id) == "aborted: conversation deleted"
    assert fleet.lookup().view == INACTIVE
    assert fleet.cache._tenants == {}


def test_each_worker_process_keeps_its_own_views_and_the_version_in_postgres_decides(fleet: Fleet) -> None:
    one, other = ConversationViews(), ConversationViews()
    assert fleet.lookup(one).view == fleet.lookup(other).view
    fleet.write("update t_settings_conversation set max_delay_ms = 31000")  # seen by neither cache yet
    first, second = fleet.lookup(one), fleet.lookup(other)
    assert first.built and second.built
    assert isinstance(first.view, ConversationView) and first.view.settings.max_delay_ms == 31000
    assert first.view == second.view == fleet.fresh()
    again = fleet.lookup(one)
    assert not again.built and again.view is first.view


def test_the_key_reads_only_the_numbers_the_conversation_names_whatever_the_tenants_size(fleet: Fleet) -> None:
    """An advance's one statement costs the same in a tenant of 2 numbers or of 2,000: the tenant's other
    numbers are not read, and a change to one of them keeps the conversation's view."""
    kept = fleet.lookup().view
    tenant = uuid.UUID(fleet.tenant_id)
    others = [make_number(fleet.db, tenant, f"extra{i}", f"+55119222{i:05d}") for i in range(40)]
    fleet.write("update t_numbers set status = 'open'")
    with runtime.db() as conn, runtime.tx(conn) as c:
        rows = db_rounds.tenant_rows(c, fleet.tenant_id, fleet.conversation_id)
    assert rows is not None and set(rows.numbers) == set(fleet.numbers.values())
    assert fleet.lookup().view is kept
    fleet.write("update t_numbers set status = 'close', paused_reason = 'ban 403' where id = any(%s)", others)
    again = fleet.lookup()
    assert not again.built and again.view is kept
    assert kept == fleet.fresh()


def _copy_conversation(db: Conn, conversation_id: str, suffix: str) -> None:
    """Another conversation of the same tenant, equal to this one but for its key (children copied)."""
    new = db.execute(
        "insert into t_conversations select (jsonb_populate_record(null::t_conversations, to_jsonb(c) || "
        "jsonb_build_object('id', gen_random_uuid(), 'key', c.key || %s::text))).* from t_conversations c "
        "where id = %s returning id::text",
        (suffix, conversation_id),
    ).fetchone()
    assert new is not None
    for table in ("t_settings_conversation", "t_conversation_schedule", "t_conversation_participants", "t_pairings"):
        db.execute(
            f"insert into {table} select (jsonb_populate_record(null::{table}, to_jsonb(x) || "
            f"jsonb_build_object('id', gen_random_uuid(), 'conversation_id', %s::uuid))).* from {table} x "
            "where conversation_id = %s",
            (new["id"], conversation_id),
        )
    db.commit()


def test_building_a_view_reads_the_rows_of_its_conversation_not_of_every_conversation_of_the_tenant(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[int] = []
    original = psycopg.Cursor.fetchall

    def fetchall(cur: psycopg.Cursor[Any]) -> Any:
        rows = original(cur)
        read.append(len(rows))
        return rows

    monkeypatch.setattr(psycopg.Cursor, "fetchall", fetchall)
    alone = fleet.lookup(ConversationViews())
    rows_alone = sum(read)
    for i in range(20):
        _copy_conversation(fleet.db, fleet.conversation_id, f"-{i}")
    read.clear()
    among = fleet.lookup(ConversationViews())
    assert among.built and among.queries == alone.queries == 8
    assert sum(read) == rows_alone, read
    assert among.view == alone.view


def test_another_tenants_change_keeps_this_tenants_views(fleet: Fleet) -> None:
    kept = fleet.lookup().view
    other = make_tenant(fleet.db, "outra", base_url=None, api_key=None)
    fleet.write("update t_settings_tenant set daily_limit = 9 where tenant_id = %s", other)
    again = fleet.lookup()
    assert not again.built and again.view is kept
    assert uuid.UUID(fleet.tenant_id) != other


def test_threads_sharing_the_cache_never_get_a_view_older_than_what_their_transaction_reads(fleet: Fleet) -> None:
    """Four threads look the view up while the configuration changes under them: in a repeatable-read
    transaction, the view's delay is the one the same transaction reads from the table, whatever the other
    threads kept meanwhile."""
    cache = ConversationViews()
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        with connect(autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("begin isolation level repeatable read")
                try:
                    view = cache.view(conn, fleet.tenant_id, fleet.conversation_id).view
                    row = conn.execute(
                        "select min_delay_ms from t_settings_conversation where conversation_id = %s",
                        (fleet.conversation_id,),
                    ).fetchone()
                finally:
                    conn.rollback()
                if not isinstance(view, ConversationView) or row is None:
                    errors.append(f"no view: {view}")
                elif view.settings.min_delay_ms != row["min_delay_ms"]:
                    errors.append(f"view {view.settings.min_delay_ms}, table {row['min_delay_ms']}")

    fleet.write("update t_settings_conversation set min_delay_ms = 999")  # the conversation's own, not inherited
    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for delay in range(1000, 1030):
            fleet.write("update t_settings_conversation set min_delay_ms = %s", delay)
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    last = fleet.lookup(cache)
    assert isinstance(last.view, ConversationView) and last.view.settings.min_delay_ms == 1029
    assert last.view == fleet.fresh()
