"""What a job costs the worker around its own code (ADR 0066): one watchdog thread for every job thread's timeout,
the suspension flag read at most once a second, a job's start in one round trip and its end in one, with rq's
records (job hash, registries, results, worker statistics, dependents) as rq leaves them. Real Redis."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis as redis_lib
from redis.connection import AbstractConnection
from rq import Queue, Retry
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.suspension import resume, suspend
from rq.timeouts import JobTimeoutException

from mirage.jobs import queues
from mirage.jobs.worker import SUSPENSION_CHECK_S, WatchdogDeathPenalty, make_worker, run_worker
from tests.runtime.test_worker_threads import nap, noop


def fail() -> None:
    raise RuntimeError("no")


def suspend_workers() -> str:
    suspend(queues.connection())
    return "suspended"


def test_job_threads_stop_each_overdue_job_at_its_own_limit_from_one_watchdog_thread(
    redis: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rq's TimerDeathPenalty starts a thread per job and gives every timeout the message of the last one set."""
    q = Queue(queues.ROUNDS, connection=redis)
    late = [q.enqueue(nap, 60, job_timeout=1), q.enqueue(nap, 60, job_timeout=2)]
    on_time = [q.enqueue(noop) for _ in range(30)]
    started: list[str] = []
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        started.append(thread.name)
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    run_worker([queues.ROUNDS], burst=True, scheduler=False, connection=redis, threads=2)
    monkeypatch.undo()
    for job, seconds in zip(late, (1, 2), strict=True):
        result = job.latest_result()
        assert job.get_status(refresh=True) == "failed" and result is not None
        assert f"JobTimeoutException: Task exceeded maximum timeout value ({seconds} seconds)" in (
            result.exc_string or ""
        )
    assert [j.get_status(refresh=True) for j in on_time] == ["finished"] * 30
    assert len(started) < 8, started  # the job threads, their command listeners, at most one watchdog: not per job


def test_the_watchdog_stops_a_block_at_its_deadline_and_never_once_the_block_has_ended() -> None:
    """Deadlines falling just as blocks end: each timeout is raised inside its block (or not at all), never after."""
    stopped = 0
    for i in range(300):
        try:
            with WatchdogDeathPenalty(0.002, JobTimeoutException):  # type: ignore[arg-type]
                end = time.perf_counter() + (i % 5) * 0.001
                while time.perf_counter() < end:
                    pass
        except JobTimeoutException:
            stopped += 1
        for _ in range(3000):  # a timeout leaking out of its block would be raised here, failing the test
            pass
    assert 0 < stopped < 300

    # and no timeout arriving mid-way left the watchdog's lock held: another thread still arms and disarms
    def arm_and_disarm() -> None:
        with WatchdogDeathPenalty(5, JobTimeoutException):
            pass

    other = threading.Thread(target=arm_and_disarm)
    other.start()
    other.join(timeout=5)
    assert not other.is_alive()


@pytest.mark.parametrize("threads", [1, 2])
def test_a_suspended_worker_takes_no_job_a_second_after_rq_suspend(redis: redis_lib.Redis, threads: int) -> None:
    q = Queue(queues.ROUNDS, connection=redis)
    first = q.enqueue(suspend_workers)
    naps = [q.enqueue(nap, 0.1) for _ in range(40)]  # four seconds of work, were the worker to take it all
    try:
        run_worker([queues.ROUNDS], burst=True, scheduler=False, connection=redis, threads=threads)
    finally:
        resume(redis)
    assert first.get_status(refresh=True) == "finished"
    done = sum(j.get_status(refresh=True) == "finished" for j in naps)
    # a check at most every SUSPENSION_CHECK_S: about ten naps per thread at most, then the suspension holds
    assert done <= threads * (SUSPENSION_CHECK_S / 0.1 + 2), done
    assert len(q) == 40 - done


def _count_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent = [0]
    original = AbstractConnection.send_packed_command

    def send(conn: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        original(conn, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send)
    return sent


def test_a_job_costs_four_round_trips_and_leaves_rqs_records_as_rq_does(
    redis: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rq's loop: 21 round trips for a trivial job; ADR 0062: 10.6; here the dequeue (2), the start (1) and the
    result (1)."""
    q = Queue(queues.ROUNDS, connection=redis)
    jobs = [q.enqueue(noop, result_ttl=600) for _ in range(100)]
    worker = make_worker([queues.ROUNDS], simple=True, connection=redis)
    sent = _count_round_trips(monkeypatch)
    assert worker.work(burst=True, with_scheduler=False)
    monkeypatch.undo()
    assert sent[0] / len(jobs) <= 4.5, sent[0] / len(jobs)  # the worker's own start and end included
    for job in jobs:
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED and job.return_value() == "ok"
        assert job.started_at and job.ended_at and job.last_heartbeat and job.worker_name == worker.name
        assert job.started_at <= job.last_heartbeat and job.started_at <= job.ended_at
        assert 0 < redis.ttl(job.key) <= 600
    assert StartedJobRegistry(queue=q).get_job_ids() == []
    assert sorted(FinishedJobRegistry(queue=q).get_job_ids()) == sorted(j.id for j in jobs)
    assert redis.scard(worker.executions_key) == 0
    stats = {k.decode(): v.decode() for k, v in redis.hgetall(worker.key).items()}
    assert stats["state"] == "idle" and stats["successful_job_count"] == "100", stats
    assert float(stats["total_working_time"]) > 0


def test_a_failing_job_is_retried_then_failed_with_rqs_records(redis: redis_lib.Redis) -> None:
    q = Queue(queues.ROUNDS, connection=redis)
    job = q.enqueue(fail, retry=Retry(max=1))
    worker = make_worker([queues.ROUNDS], simple=True, connection=redis)
    assert worker.work(burst=True, with_scheduler=False)
    job.refresh()
    assert job.get_status() == JobStatus.FAILED and job.retries_left == 0
    assert job.last_heartbeat is not None and job.ended_at is not None
    result = job.latest_result()
    assert result is not None and "RuntimeError: no" in (result.exc_string or "")
    assert FailedJobRegistry(queue=q).get_job_ids() == [job.id]
    assert StartedJobRegistry(queue=q).get_job_ids() == []
    stats = {k.decode(): v.decode() for k, v in redis.hgetall(worker.key).items()}
    assert stats["state"] == "idle" and stats["failed_job_count"] == "2", stats


def test_a_job_s_dependents_run_after_it_and_a_result_kept_zero_seconds_is_not_kept(redis: redis_lib.Redis) -> None:
    """Mirage enqueues nothing with `depends_on`; rq's dependents still run, read with the job's FINISHED status."""
    q = Queue(queues.ROUNDS, connection=redis)
    first = q.enqueue(noop)
    then = q.enqueue(noop, depends_on=first)
    gone = q.enqueue(noop, result_ttl=0)
    assert then.get_status() == JobStatus.DEFERRED
    assert make_worker([queues.ROUNDS], simple=True, connection=redis).work(burst=True, with_scheduler=False)
    assert first.get_status(refresh=True) == then.get_status(refresh=True) == JobStatus.FINISHED
    assert not redis.exists(gone.key)
