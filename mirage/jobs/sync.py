"""The runtime sync: enqueue the job that closes each gap between the runtime and the applied configuration.

`sync_runtime` runs every minute under `mirage cron`; `mirage apply` calls `enqueue_runtime_drift` after every
apply, changes or not, so re-running apply after a lost enqueue (a crash after commit, Redis down) catches up.
Drift is read by mirage.reconcile.sync; jobs go under deterministic ids, so a gap already queued (by apply, or
by the previous tick) is not queued twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mirage.db.connect import connect
from mirage.jobs.queues import enqueue_unique
from mirage.jobs.wrapper import job
from mirage.reconcile.effects import Effect
from mirage.reconcile.sync import RuntimeDrift, read_drift
from mirage.settings import get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnqueueReport:
    """What enqueueing a batch of effects did: queued now, already queued, or failed (with the reason)."""

    enqueued: tuple[Effect, ...] = ()
    already: tuple[Effect, ...] = ()
    failed: tuple[tuple[Effect, str], ...] = ()


def enqueue_one(effect: Effect) -> bool:
    """Enqueue one effect under its deterministic id; False when a job with that id exists already."""
    return enqueue_unique(
        effect.queue,
        effect.func,
        job_id=effect.job_id,
        args=effect.args,
        kwargs=dict(effect.kwargs),
        description=effect.reason or None,
    )


def enqueue_effects(effects: Sequence[Effect], enqueue: Callable[[Effect], bool] = enqueue_one) -> EnqueueReport:
    """Enqueue each effect; an unreachable Redis fails the rest at once instead of timing out on each one."""
    done: list[Effect] = []
    already: list[Effect] = []
    failed: list[tuple[Effect, str]] = []
    for i, effect in enumerate(effects):
        try:
            (done if enqueue(effect) else already).append(effect)
        except (RedisConnectionError, RedisTimeoutError) as e:
            reason = f"Redis unreachable: {type(e).__name__}"
            failed.extend((rest, reason) for rest in effects[i:])
            break
    return EnqueueReport(tuple(done), tuple(already), tuple(failed))


def drift_of(conn: psycopg.Connection[Any], slugs: Sequence[str] | None = None) -> RuntimeDrift:
    """The runtime drift of `slugs` (None: every tenant), read in its own short transaction.

    A database whose schema is not there yet has none (`mirage apply` migrates it first).
    """
    try:
        return read_drift(conn, slugs, default_base_url=get_settings().evolution_base_url)
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        return RuntimeDrift()
    finally:
        conn.rollback()


def enqueue_runtime_drift(
    conn: psycopg.Connection[Any], slugs: Sequence[str] | None = None
) -> tuple[RuntimeDrift, EnqueueReport]:
    """Read the drift of `slugs` and enqueue the jobs that close it (what `mirage apply` runs after applying)."""
    drift = drift_of(conn, slugs)
    return drift, enqueue_effects(drift.effects())


@job
def sync_runtime() -> dict[str, int]:
    """Cron job: enqueue the provision / deprovision / reschedule jobs the runtime still owes the applied rows."""
    with connect() as conn:
        drift, report = enqueue_runtime_drift(conn)
    result = {**drift.counts(), "enqueued": len(report.enqueued), "already_queued": len(report.already)}
    if not drift.empty:
        log.info("runtime drift", extra=result)
    if report.failed:  # the cron tick itself came through Redis, so this is rare: say so, the next tick retries
        log.error("runtime sync could not enqueue", extra={"failed": len(report.failed)})
    return result
