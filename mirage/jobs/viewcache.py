"""The tick's effective views, kept by the cron process between ticks (ADR 0045), and the tick's planning.

A conversation's effective view (mirage.engine.view) depends only on configuration rows, which change when
someone changes the configuration, and on its tenant's numbers. Every statement that writes a configuration
table gives the tenants it touched a fresh `t_tenants.config_version` (triggers, whoever the writer is), so
each tick reads, for every tenant, its version, its settings and its numbers (status included), and rebuilds
the views of a tenant only when one of them differs from what its cached views were built from. The rest of
what planning needs, the dynamic state (recent rounds, rounds per window, busy numbers, quota usage), is read
fresh every tick and never cached.
"""

from __future__ import annotations

import functools
import gc
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from mirage.db import rounds as db_rounds
from mirage.engine.quotas import QuotaClock, counter_keys, daily_limit, quota_clock
from mirage.engine.rounds import CheapChecks, PlanState, RoundPlan, Skip, cheap_checks, plan_rounds
from mirage.engine.view import ConversationView
from mirage.jobs.runtime import Conn, build_views, collector_paused, plan_state_of

Skipped = tuple[str, str, str]  # (tenant slug, conversation key, reason)


@dataclass(frozen=True)
class _Built:
    key: tuple[Any, ...]  # what the views were built from, besides the configuration rows the version stands for
    views: tuple[ConversationView, ...]
    skipped: tuple[Skipped, ...]


def tenant_key(t: db_rounds.TenantRows) -> tuple[Any, ...]:
    """What a tenant's views depend on besides its configuration rows (which the version stands for) and its
    numbers. Compared with ==, never hashed: rows are dicts."""
    return (t.config_version, t.tenant, t.settings)


def view_key(t: db_rounds.TenantRows) -> tuple[Any, ...]:
    # Compared with ==, never hashed: rows are dicts (numbers by id, so their order does not matter).
    return (*tenant_key(t), t.numbers)


@functools.cache  # once per process
def _freeze_once() -> None:
    """Exempt the process's first views (and what start-up built) from the cyclic garbage collector: they live
    until their tenant changes, and every full collection would walk them all (ADR 0058; the web service does
    the same after start-up, ADR 0014). Cycles alive at this instant are never collected: once, bounded."""
    gc.freeze()


@dataclass
class Views:
    """One tick's views with the state they were read with."""

    state: db_rounds.Snapshot  # tenants, numbers, rounds and busy numbers: read this tick
    views: list[ConversationView]
    skipped: list[Skipped]
    rebuilt: int  # tenants whose views this tick built (all of them on the first tick)
    queries: int  # SQL statements sent: 4, or 11 when some tenant's configuration changed
    sql_s: float = 0.0  # seconds spent reading rows
    build_s: float = 0.0  # seconds spent building (or finding) the views


@dataclass
class ViewCache:
    """Effective views per tenant, rebuilt when the tenant's configuration version, settings or numbers change."""

    _tenants: dict[str, _Built] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, conn: Conn, since: date) -> Views:
        """The views of every active conversation, with the dynamic state read now (in `conn`'s transaction)."""
        t0 = time.perf_counter()
        state = db_rounds.load_snapshot(conn, since, config_of=())
        queries, sql_s = state.queries, time.perf_counter() - t0
        with self._lock:
            stale = [
                tid for tid, t in state.tenants.items() if (b := self._tenants.get(tid)) is None or b.key != view_key(t)
            ]
            if stale:
                # The version was read before these rows: views are never older than the key they are kept under.
                t1 = time.perf_counter()
                first = not self._tenants
                with collector_paused():  # rows and views: many objects, no cycles (ADR 0058)
                    conversations, n = db_rounds.load_configuration(conn, state.tenants, tenant_ids=stale)
                    queries, sql_s = queries + n, sql_s + time.perf_counter() - t1
                    built, skipped = build_views(db_rounds.Snapshot(state.tenants, conversations, state.busy_numbers))
                    by_tenant: dict[str, list[ConversationView]] = {tid: [] for tid in stale}
                    skipped_by: dict[str, list[Skipped]] = {tid: [] for tid in stale}
                    slugs = {str(state.tenants[tid].tenant.get("slug")): tid for tid in stale}
                    for v in built:
                        by_tenant[v.tenant_id].append(v)
                    for s in skipped:
                        skipped_by[slugs[s[0]]].append(s)
                    for tid in stale:
                        self._tenants[tid] = _Built(
                            view_key(state.tenants[tid]), tuple(by_tenant[tid]), tuple(skipped_by[tid])
                        )
                    if first:
                        _freeze_once()
            for gone in set(self._tenants) - set(state.tenants):  # archived, or another database
                del self._tenants[gone]
            kept = [self._tenants[tid] for tid in state.tenants]
        views = [v for b in kept for v in b.views]
        return Views(
            state=state,
            views=views,
            skipped=[s for b in kept for s in b.skipped],
            rebuilt=len(stale),
            queries=queries,
            sql_s=sql_s,
            build_s=time.perf_counter() - t0 - sql_s,
        )

    def clear(self) -> None:
        with self._lock:
            self._tenants.clear()


CACHE = ViewCache()  # the cron process's: one per process, shared by its ticks


def plan_states(
    loaded: Views, now: datetime, used: Callable[[list[str]], list[int]]
) -> tuple[dict[str, PlanState], CheapChecks]:
    """Each view's dynamic state: its recent rounds and the busy numbers; and, for the views that pass the cheap
    checks now (`cheap_checks`, returned too: the others never reach their quotas), their numbers' quota usage
    and limits (the same counters and limits as `mirage.engine.quotas.buckets`; `used` reads the counters, once
    a tick). Views with the same limits share one mapping of them, and all share the tick's usage mapping: a
    view only looks up its own numbers."""
    state = loaded.state
    rounds, totals, busy = state.rounds, state.total_rounds, state.busy_numbers
    idle = plan_state_of((), 0, busy)  # no rounds yet, quotas not asked for
    out = {
        v.id: plan_state_of(recent, totals.get(v.id, 0), busy) if (recent := rounds.get(v.id)) else idle
        for v in loaded.views
    }
    checks = cheap_checks(loaded.views, out, now)
    usage: dict[str, tuple[int, int]] = {}  # filled once the counters are read, below
    index: dict[str, int] = {}  # number -> index of its hour counter in `names` (its day counter follows)
    names: list[str] = []
    # The limits of numbers, by what sets them (hourly, daily, zone), with the zone's quota clock and the idle
    # state that carries them (views without rounds share it).
    groups: dict[tuple[int, int, str], tuple[QuotaClock, dict[str, tuple[int, int]], PlanState]] = {}
    caps: dict[tuple[int, date | None, date], int] = {}
    for v, checked in zip(loaded.views, checks.results, strict=True):
        if type(checked) is Skip:
            continue
        settings = v.settings
        hourly, daily = settings.hourly_burst_limit, settings.daily_limit
        group = groups.get((hourly, daily, v.timezone))
        if group is None:
            limits_of: dict[str, tuple[int, int]] = {}
            group = groups[(hourly, daily, v.timezone)] = (
                quota_clock(now, v.timezone),
                limits_of,
                replace(idle, used=usage, limits=limits_of),
            )
        clock, limits, idle_with_quota = group
        for n in v.numbers.values():
            if n.id not in limits:
                if n.id not in index:
                    index[n.id] = len(names)
                    names.extend(counter_keys(n.id, clock))
                cap = caps.get((daily, n.warmup_started_on, clock.day))
                if cap is None:
                    cap = caps[(daily, n.warmup_started_on, clock.day)] = daily_limit(
                        daily, n.warmup_started_on, clock.day
                    )
                limits[n.id] = (hourly, cap)
        st = out[v.id]
        out[v.id] = idle_with_quota if st is idle else PlanState(st.rounds, st.total_rounds, busy, usage, limits)
    values = used(names)
    usage.update((n, (values[i], values[i + 1])) for n, i in index.items())
    return out, checks


def plan_tick(
    loaded: Views, now: datetime, rng: random.Random, used: Callable[[list[str]], list[int]]
) -> list[RoundPlan | Skip]:
    """The tick's decisions over the loaded views (pure but for `used`, the quota counters' reader); the cyclic
    collector paused meanwhile: states, checks and decisions are tens of thousands of objects and no cycle."""
    with collector_paused():
        states, checks = plan_states(loaded, now, used)
        return plan_rounds(loaded.views, states, now, rng, checks)
