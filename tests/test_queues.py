"""Jobs are enqueued under deterministic ids, once, carrying the caller's log context."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis as redis_lib
from rq import Queue

from mirage import backends
from mirage.jobs.queues import ROUNDS, enqueue_unique, job_key
from mirage.logs import log_context
from mirage.settings import get_settings
from tests.webhooks.helpers import SilentRedis


def test_enqueue_unique_enqueues_a_job_id_once(redis: redis_lib.Redis) -> None:
    first = enqueue_unique(ROUNDS, "mirage.jobs.queues.connection", job_id="probe:1", conn=redis)
    again = enqueue_unique(ROUNDS, "mirage.jobs.queues.connection", job_id="probe:1", conn=redis)
    other = enqueue_unique(ROUNDS, "mirage.jobs.queues.connection", job_id="probe:2", conn=redis)
    assert (first, again, other) == (True, False, True)
    assert Queue(ROUNDS, connection=redis).job_ids == ["probe_1", "probe_2"]


def test_enqueued_job_carries_the_log_context(redis: redis_lib.Redis) -> None:
    with log_context("cid-123", tenant="acme"):
        enqueue_unique(ROUNDS, "mirage.jobs.queues.connection", job_id="probe:ctx", conn=redis)
    job = Queue(ROUNDS, connection=redis).fetch_job(job_key("probe:ctx"))
    assert job is not None
    assert job.meta["log_context"] == {"tenant": "acme", "correlation_id": "cid-123"}


def test_enqueueing_on_a_redis_that_hangs_fails_instead_of_waiting_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook or a job enqueueing must not hang with the Redis (redis-py before 8 has no default timeout)."""
    silent = SilentRedis()
    monkeypatch.setenv("REDIS_URL", silent.url)
    monkeypatch.setattr(backends, "REDIS_TIMEOUT_S", 0.2)
    get_settings.cache_clear()
    try:
        with pytest.raises(redis_lib.TimeoutError):
            enqueue_unique(ROUNDS, "mirage.jobs.queues.connection", job_id="probe:hung")
        assert silent.accepted.is_set()
    finally:
        silent.close()


@pytest.mark.parametrize("when", ["at", "delay"])
def test_enqueue_unique_schedules_a_job_once_for_later(redis: redis_lib.Redis, when: str) -> None:
    from datetime import UTC, datetime, timedelta

    from rq.registry import ScheduledJobRegistry

    target = datetime.now(UTC) + timedelta(minutes=5)
    option = {"at": target} if when == "at" else {"delay": timedelta(minutes=5)}
    first = enqueue_unique(ROUNDS, "mirage.jobs.queues.connection", job_id="later:1", conn=redis, **option)  # type: ignore[arg-type]
    again = enqueue_unique(ROUNDS, "mirage.jobs.queues.connection", job_id="later:1", conn=redis, **option)  # type: ignore[arg-type]
    assert (first, again) == (True, False)
    q = Queue(ROUNDS, connection=redis)
    assert q.job_ids == []  # not runnable yet
    registry = ScheduledJobRegistry(queue=q)
    assert registry.get_job_ids() == ["later_1"]
    scheduled = registry.get_scheduled_time("later_1")
    assert abs((scheduled - target).total_seconds()) <= 2


def test_enqueue_unique_refuses_naive_or_double_times(redis: redis_lib.Redis) -> None:
    from datetime import datetime, timedelta

    with pytest.raises(ValueError, match="timezone-aware"):
        enqueue_unique(ROUNDS, "mirage.jobs.queues.connection", job_id="x", conn=redis, at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="not both"):
        enqueue_unique(
            ROUNDS,
            "mirage.jobs.queues.connection",
            job_id="x",
            conn=redis,
            at=datetime.now().astimezone(),
            delay=timedelta(seconds=1),
        )


@pytest.mark.parametrize("simple", [True, False], ids=["in-process", "forking"])
def test_a_worker_listens_for_commands_with_a_short_poll_so_it_exits_promptly(
    redis: redis_lib.Redis, simple: bool
) -> None:
    """rq polls its command channel every 60 s and redis-py 8 joins that thread without a timeout on teardown."""
    from mirage.jobs.worker import PUBSUB_POLL_S, make_worker

    worker = make_worker([ROUNDS], simple=simple, connection=redis)
    worker.subscribe()
    try:
        assert worker.pubsub_thread is not None and worker.pubsub_thread.sleep_time == PUBSUB_POLL_S <= 1
    finally:
        worker.unsubscribe()
    assert not worker.pubsub_thread.is_alive()


@pytest.mark.parametrize("simple", [True, False], ids=["in-process", "forking"])
def test_a_worker_stops_a_job_that_outlives_its_timeout(redis: redis_lib.Redis, simple: bool) -> None:
    """rq applies its SIGALRM death penalty wherever the job runs: in the worker process too (ADR 0048)."""
    from mirage.jobs.worker import make_worker

    job = Queue(ROUNDS, connection=redis).enqueue("time.sleep", 30, job_timeout=1)
    started = time.monotonic()
    make_worker([ROUNDS], simple=simple, connection=redis).work(burst=True, with_scheduler=False)
    assert time.monotonic() - started < 20
    result = job.latest_result()
    assert job.is_failed and result is not None and "JobTimeoutException" in (result.exc_string or "")


def test_a_worker_keeps_one_postgres_connection_and_one_redis_client_between_jobs(
    database_url: str, redis: redis_lib.Redis
) -> None:
    from mirage.jobs import queues
    from mirage.jobs.runtime import db

    def backend() -> int:
        with db() as conn:
            return int(conn.execute("select pg_backend_pid() as pid").fetchone()["pid"])

    with queues.kept_connections():
        first, second = backend(), backend()
        with db() as outer:
            nested = backend()  # the kept connection is in use: a fresh one, closed after
            assert not outer.closed
        assert queues.connection() is queues.connection()
    assert first == second != nested
    assert outer.closed  # closed with the block
    assert backend() != first and queues.connection() is not queues.connection()  # outside a worker: per use


def test_a_job_scheduled_mid_second_is_due_at_its_instant_and_never_before(redis: redis_lib.Redis) -> None:
    """rq keeps whole seconds; the exact instant is stored and the workers' scheduler reads it (ADR 0050)."""
    from rq.registry import ScheduledJobRegistry

    from mirage.jobs.worker import MirageScheduler

    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2, milliseconds=300)
    enqueue_unique(ROUNDS, "mirage.jobs.queues.connection", job_id="probe:at", conn=redis, at=at)
    registry = ScheduledJobRegistry(queue=Queue(ROUNDS, connection=redis))
    assert registry.get_scheduled_time(job_key("probe:at")) == at
    scheduler = MirageScheduler([ROUNDS], connection=redis)
    scheduler.acquire_locks()
    moved_at = None
    while moved_at is None and datetime.now(UTC) < at + timedelta(seconds=2):
        scheduler.enqueue_scheduled_jobs()
        if job_key("probe:at") in Queue(ROUNDS, connection=redis).job_ids:
            moved_at = datetime.now(UTC)
        time.sleep(0.02)
    scheduler.release_locks()
    assert moved_at is not None and at <= moved_at < at + timedelta(milliseconds=300)


def test_kept_connections_belong_to_the_thread_that_keeps_them(database_url: str, redis: redis_lib.Redis) -> None:
    """A `--threads` worker's job threads each keep their own (ADR 0059); a thread outside any block opens per use."""
    import threading

    from mirage.jobs import queues
    from mirage.jobs.runtime import db

    def backend() -> int:
        with db() as conn:
            return int(conn.execute("select pg_backend_pid() as pid").fetchone()["pid"])

    seen: dict[str, tuple[int, int, bool]] = {}

    def keeping() -> None:
        with queues.kept_connections():
            seen["keeping"] = (backend(), backend(), queues.connection() is queues.connection())

    def not_keeping() -> None:
        seen["not keeping"] = (backend(), backend(), queues.connection() is queues.connection())

    with queues.kept_connections():
        mine = backend()
        for target in (keeping, not_keeping):
            thread = threading.Thread(target=target)
            thread.start()
            thread.join()
        assert backend() == mine
    first, again, same_client = seen["keeping"]
    assert first == again != mine and same_client
    first, again, same_client = seen["not keeping"]
    assert mine not in (first, again) and first != again and not same_client
