"""What the runtime jobs share: the clock (MIRAGE_CLOCK), connections, views built from stored rows, scheduling
at a clock instant, and quota buckets of a number."""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import logging
import os
import random
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from mirage.db import rounds as db_rounds
from mirage.db.connect import connect, database_url
from mirage.db.sessions import SET_ROLE_AND_CLAIMS_SQL, service_session
from mirage.engine.clock import Clock, clock_from_spec
from mirage.engine.rounds import PlanState, RoundRecord, RoundState
from mirage.engine.view import ConversationView, TenantViews, ViewError, Week
from mirage.jobs import queues
from mirage.jobs.quota import QuotaCounter

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]


@lru_cache(maxsize=8)
def _clock(spec: str) -> Clock:
    return clock_from_spec(spec)


_simulated: Clock | None = None
_draws: tuple[int, itertools.count[int]] | None = None


def clock() -> Clock:
    """The runtime's clock: the one `simulated()` installed, else MIRAGE_CLOCK (`wall` by default; `scaled:…` in
    time-scaled tests)."""
    return _simulated if _simulated is not None else _clock(os.environ.get("MIRAGE_CLOCK", ""))


def rng(key: str | None = None) -> random.Random:
    """Randomness for one run-time decision: seeded by `key` when given (a retried step draws the same), fresh
    otherwise. Under `simulated(seed=…)` the n-th draw of the run is seeded by (seed, n) instead: keys hold random
    UUIDs, while the order of the draws is what the virtual-time driver fixes (ADR 0038)."""
    if _draws is not None:
        seed, n = _draws
        return random.Random(f"{seed}:{next(n)}")
    return random.Random(key) if key is not None else random.Random()


@contextlib.contextmanager
def simulated(virtual: Clock, seed: int) -> Iterator[None]:
    """Run the runtime in this process on `virtual` time with reproducible randomness (`mirage simulate`)."""
    global _simulated, _draws
    before = (_simulated, _draws)
    _simulated, _draws = virtual, (seed, itertools.count())
    try:
        yield
    finally:
        _simulated, _draws = before


@contextlib.contextmanager
def db() -> Iterator[Conn]:
    """A connection in autocommit mode: each `service_session(conn)` block is one transaction.

    Under `queues.kept_connections()` (a worker's job thread) it is the thread's kept connection when that one is
    idle and healthy (a nested `db()` gets a fresh one); a connection left broken or inside a transaction (a job
    stopped mid-statement by its timeout) is closed. Threads never share one (ADR 0059)."""
    kept = queues.kept()
    key = ("postgres", os.getpid(), database_url()) if kept is not None else None
    conn = kept.pop(key, None) if kept is not None and key is not None else None
    if conn is not None and (conn.closed or conn.info.transaction_status != TransactionStatus.IDLE):
        conn.close()
        conn = None
    if conn is None:
        conn = connect(autocommit=True)
    try:
        yield conn
    finally:
        reusable = (
            kept is not None
            and key is not None
            and kept is queues.kept()
            and key not in kept
            and not conn.closed
            and conn.info.transaction_status == TransactionStatus.IDLE
        )
        if reusable:
            kept[key] = conn  # type: ignore[index]
        else:
            conn.close()


# `service_session`'s opening (BEGIN, the role, the service claims) as one simple-protocol string: one round trip
# instead of three. Its claims are a constant, so there is nothing to bind.
_SERVICE_CLAIMS = json.dumps({"role": "service_role"}, separators=(",", ":"))
_BEGIN_AS_SERVICE = "begin; " + SET_ROLE_AND_CLAIMS_SQL % ("'service_role'", f"'{_SERVICE_CLAIMS}'")


@contextlib.contextmanager
def tx(conn: Conn) -> Iterator[Conn]:
    """One transaction as the service role (bypasses RLS; runtime jobs act for every tenant): `service_session`'s
    statements, with its opening sent in one round trip on `db()`'s autocommit connections (a job opens several
    transactions; under load each round trip costs about a millisecond)."""
    if not conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE:
        with service_session(conn) as c:  # it refuses a connection already inside a transaction
            yield c
        return
    conn.execute(_BEGIN_AS_SERVICE)
    try:
        yield conn
    except BaseException:
        with contextlib.suppress(psycopg.Error):  # a broken connection: the original error is what matters
            conn.rollback()
        raise
    conn.commit()


def schedule(queue: str, func: str, *, job_id: str, args: list[str], when: datetime, now: datetime) -> bool:
    """Run `func` at the clock instant `when` (now, if it is not in the future): RQ's scheduler, never a sleep."""
    if when <= now:
        return queues.enqueue_unique(queue, func, job_id=job_id, args=args)
    return queues.enqueue_unique(queue, func, job_id=job_id, args=args, at=clock().wall_time(when))


def counter() -> QuotaCounter:
    """Quota counters on this process's Redis (a client per call: jobs are short, and tests swap Redis)."""
    return QuotaCounter(queues.connection())


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block that allocates many objects and no cycles (loading rows,
    building views): its passes meanwhile would only walk them, and once the long-lived objects grow by a
    quarter, walk the whole heap (ADR 0058). Restored as it was, nested or not."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def build_views(snapshot: db_rounds.Snapshot) -> tuple[list[ConversationView], list[tuple[str, str, str]]]:
    """Views of every conversation in the snapshot, and (tenant slug, conversation key, reason) of those skipped.

    One `TenantViews` per tenant (its zone, quiet hours, number and persona views read once) and one memo of
    schedules for the whole snapshot (equal schedule text is one week, whatever the tenant); the garbage
    collector paused meanwhile (ADR 0058)."""
    views, skipped = [], []
    builders: dict[str, TenantViews] = {}
    weeks: dict[str, Week] = {}
    with collector_paused():
        for c in snapshot.conversations.values():
            t = snapshot.tenants[c.conversation["tenant_id"]]
            try:
                builder = builders.get(t.tenant["id"])
                if builder is None:
                    builder = builders[t.tenant["id"]] = TenantViews(
                        t.tenant, t.settings, t.numbers, t.personas, None, weeks
                    )
                views.append(builder.view(c.conversation, c.settings, c.schedule, c.participants, c.pairings, c.topics))
            except ViewError as e:
                skipped.append((str(t.tenant.get("slug")), e.conversation, e.reason))
            except (KeyError, TypeError, ValueError) as e:  # a row the view could not even read
                key = str(c.conversation.get("key"))
                skipped.append((str(t.tenant.get("slug")), key, f"unreadable row: {e!r}"))
    return views, skipped


def plan_state(c: db_rounds.ConversationRows, busy: frozenset[str]) -> PlanState:
    return plan_state_of(c.rounds, c.total_rounds, busy)


def plan_state_of(
    rounds: Iterable[dict[str, Any]],
    total_rounds: int,
    busy: frozenset[str],
    used: Mapping[str, tuple[int, int]] | None = None,
    limits: Mapping[str, tuple[int, int]] | None = None,
) -> PlanState:
    """A conversation's plan state from its loaded round rows (and its numbers' quota usage and limits)."""
    records = [
        RoundRecord(
            window_date=r["window_date"],
            daypart=r["daypart"],
            seq=int(r["seq"]),
            status=r["status"],
            created_at=r["created_at"],
            finished_at=r["finished_at"],
            topic_id=r["topic_id"],
            number_a_id=r["number_a_id"],
            number_b_id=r["number_b_id"],
        )
        for r in rounds
    ]
    return PlanState(rounds=records, total_rounds=total_rounds, busy_numbers=busy, used=used or {}, limits=limits or {})


def round_state(r: dict[str, Any]) -> RoundState:
    return RoundState(
        id=r["id"],
        status=r["status"],
        script=tuple(str(s) for s in (r["script"] or [])),
        starter=r["number_a_id"],
        responder=r["number_b_id"],
        done=int(r["exchanges_done"]),
        turn=r["turn_number_id"],
        deadline_at=r["deadline_at"],
    )


def since_for_snapshot(now: datetime) -> date:
    return (now - timedelta(days=1)).date()
