"""Periodic jobs, scheduled by rq 3's CronScheduler: `mirage cron` runs one scheduler per deployment.

Every job here is idempotent, so the rare double enqueue of two schedulers (RQ's schedulers do not
coordinate) costs a little work and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq.cron import CronScheduler

from mirage.jobs import queues
from mirage.jobs.events import reprocess_pending
from mirage.jobs.maintenance import link_auth_users, refresh_metrics
from mirage.jobs.outreach import outreach_tick
from mirage.jobs.rounds import conversation_tick
from mirage.jobs.sweep import sweep_outbox
from mirage.jobs.sync import sync_runtime


@dataclass(frozen=True)
class Periodic:
    func: Callable[..., Any]
    queue: str
    interval_s: int
    why: str


SCHEDULE: tuple[Periodic, ...] = (
    Periodic(sync_runtime, queues.EVENTS, 60, "enqueue the jobs the runtime owes the applied rows (level-triggered)"),
    Periodic(reprocess_pending, queues.EVENTS, 300, "normalise webhook events left `stored` while Redis was down"),
    Periodic(
        refresh_metrics,
        queues.EVENTS,
        300,
        "refresh the metrics views (mv_stats_messages, mv_number_stats, mv_page_facts)",
    ),
    Periodic(link_auth_users, queues.EVENTS, 300, "give members who signed up since their tenant claim"),
    Periodic(conversation_tick, queues.ROUNDS, 60, "plan the rounds every active conversation starts now"),
    Periodic(outreach_tick, queues.ROUNDS, 60, "run the outreach policies: answers, owed messages, one new contact"),
    Periodic(sweep_outbox, queues.ROUNDS, 60, "re-send lost outbox jobs, settle dead sends, advance stalled rounds"),
)


def build_scheduler(connection: Redis | None = None, schedule: tuple[Periodic, ...] = SCHEDULE) -> CronScheduler:
    """A CronScheduler with Mirage's periodic jobs registered (not started)."""
    scheduler = CronScheduler(connection=connection or queues.connection(), name="")
    for p in schedule:
        scheduler.register(p.func, p.queue, interval=p.interval_s, result_ttl=3600, failure_ttl=7 * 24 * 3600)
    return scheduler
