"""Periodic jobs: registered with rq's CronScheduler, enqueued when due, and each one runs."""

from __future__ import annotations

from typing import Any

import psycopg
import redis as redis_lib
from click.testing import CliRunner
from rq import Queue

from mirage.cli import cli
from mirage.jobs.cron import SCHEDULE, build_scheduler
from mirage.jobs.maintenance import refresh_metrics
from mirage.jobs.worker import make_worker


def test_a_new_scheduler_enqueues_every_periodic_job_at_once_then_waits_for_its_interval(
    redis: redis_lib.Redis,
) -> None:
    scheduler = build_scheduler(redis)
    assert len(scheduler.enqueue_jobs()) == len(SCHEDULE)
    assert scheduler.enqueue_jobs() == []  # not due again before the interval
    jobs = [j for name in {p.queue for p in SCHEDULE} for j in Queue(name, connection=redis).get_jobs()]
    assert sorted(j.func_name for j in jobs) == sorted(f"{p.func.__module__}.{p.func.__name__}" for p in SCHEDULE)


def test_the_periodic_jobs_run_in_a_worker(db: psycopg.Connection[Any], redis: redis_lib.Redis) -> None:
    build_scheduler(redis).enqueue_jobs()
    names = sorted({p.queue for p in SCHEDULE})
    make_worker(names, simple=True, connection=redis).work(burst=True, with_scheduler=False)
    jobs = [j for name in names for j in Queue(name, connection=redis).finished_job_registry.get_job_ids()]
    assert len(jobs) == len(SCHEDULE)


def test_refresh_metrics_refreshes_every_view(db: psycopg.Connection[Any]) -> None:
    assert set(refresh_metrics()) == {"mv_stats_messages", "mv_number_stats", "mv_page_facts"}


def test_cron_list_names_every_job() -> None:
    out = CliRunner().invoke(cli, ["cron", "--list"]).output
    assert "reprocess_pending" in out and "refresh_metrics" in out and "every  300s" in out
