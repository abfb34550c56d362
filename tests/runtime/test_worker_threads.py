"""`mirage worker --threads N` (ADR 0059): N jobs in flight in one process, each thread with its own connections,
timeouts that still hold, a warm stop that lets the jobs in hand finish. Real Redis and Postgres; the last test
runs the real `mirage worker` command in a child process and signals it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from click.testing import CliRunner
from redis.connection import AbstractConnection
from rq import Queue, Worker
from rq.job import Job, get_current_job

from mirage.cli import cli
from mirage.jobs import queues
from mirage.jobs.runtime import db
from mirage.jobs.worker import make_worker, run_worker
from tests.evolution.helpers import wait_until
from tests.runtime.conftest import Harness

ROOT = Path(__file__).resolve().parents[2]
GUARD_S = 30  # how long a test job waits for the others before it fails the test (not a speed figure)


def _wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_S
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} never happened")
        time.sleep(0.05)


def meet(key: str, n: int) -> dict[str, Any]:
    """Arrive, then wait for `n` jobs to have arrived: it finishes only if `n` of them run at the same time."""
    r = queues.connection()
    r.rpush(key, 1)
    with db() as conn:
        first = conn.execute("select pg_backend_pid() as pid").fetchone()["pid"]
    _wait_for(lambda: int(r.llen(key)) >= n, f"{n} jobs at once")
    with db() as conn:
        again = conn.execute("select pg_backend_pid() as pid").fetchone()["pid"]
    return {"thread": threading.get_ident(), "pid": first, "again": again, "redis": id(r)}


def nap(seconds: float) -> str:
    """Python that keeps running (short sleeps) well past its job's timeout."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
    return "overslept"


def hold(key: str) -> str:
    """Say it started, then wait until the test lets it go."""
    r = queues.connection()
    r.rpush(f"{key}:started", 1)
    _wait_for(lambda: bool(r.exists(f"{key}:go")), "the go")
    return "done"


@pytest.mark.parametrize("threads", [2, 4])
def test_a_worker_process_runs_as_many_jobs_at_once_as_it_has_threads_each_on_its_own_connections(
    redis: redis_lib.Redis, database_url: str, threads: int
) -> None:
    q = Queue(queues.ROUNDS, connection=redis)
    jobs = [q.enqueue(f"{__name__}.meet", "meet", threads) for _ in range(threads)]
    assert run_worker([queues.ROUNDS], burst=True, scheduler=False, connection=redis, threads=threads)
    assert [j.get_status(refresh=True) for j in jobs] == ["finished"] * threads
    results = [j.return_value() for j in jobs]
    assert len({r["thread"] for r in results}) == threads  # one job per thread, all at once
    assert len({r["pid"] for r in results}) == threads  # a Postgres connection per thread...
    assert all(r["again"] == r["pid"] for r in results)  # ...kept by it between uses
    assert len({r["redis"] for r in results}) == threads  # and a Redis client per thread


def test_a_job_thread_stops_a_job_that_outlives_its_timeout(redis: redis_lib.Redis) -> None:
    """SIGALRM reaches the main thread only: a job thread uses rq's timer death penalty."""
    q = Queue(queues.ROUNDS, connection=redis)
    late = q.enqueue(f"{__name__}.nap", 60, job_timeout=1)
    on_time = q.enqueue(f"{__name__}.nap", 0.1, job_timeout=30)
    run_worker([queues.ROUNDS], burst=True, scheduler=False, connection=redis, threads=2)
    result = late.latest_result()
    assert late.is_failed and result is not None and "JobTimeoutException" in (result.exc_string or "")
    assert on_time.get_status(refresh=True) == "finished"


def test_threads_are_for_in_process_workers_only() -> None:
    with pytest.raises(ValueError, match="not forking"):
        run_worker([queues.ROUNDS], burst=True, simple=False, threads=2)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--threads", "0"], "--threads"),
        (["--threads", "65"], "--threads"),
        (["--threads", "many"], "--threads"),
        (["--fork", "--threads", "2"], "--fork"),
    ],
    ids=["zero", "too-many", "not-a-number", "fork-with-threads"],
)
def test_a_worker_refuses_a_wrong_thread_count_before_it_starts(args: list[str], names: str) -> None:
    result = CliRunner().invoke(cli, ["--lang", "en", "worker", "--burst", *args])
    assert result.exit_code == 2, result.output
    assert names in result.output
    assert "Traceback" not in result.output


def test_sigterm_lets_the_jobs_in_flight_finish_and_takes_no_more(
    redis: redis_lib.Redis, redis_url: str, database_url: str
) -> None:
    q = Queue(queues.ROUNDS, connection=redis)
    held = [q.enqueue(f"{__name__}.hold", "hold") for _ in range(3)]
    waiting = q.enqueue(f"{__name__}.hold", "later")  # behind them: no thread is free to take it
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "mirage", "worker", "-q", "rounds", "--threads", "3", "--no-scheduler"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: redis.llen("hold:started") == 3, timeout=GUARD_S)
        proc.send_signal(signal.SIGTERM)
        # every thread has the stop request (rq records it on each busy worker) before its job may end
        wait_until(
            lambda: sum(w.shutdown_requested_date is not None for w in Worker.all(connection=redis)) == 3,
            timeout=GUARD_S,
        )
        redis.set("hold:go", 1)
        _, err = proc.communicate(timeout=GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert [j.get_status(refresh=True) for j in held] == ["finished"] * 3
    assert waiting.get_status(refresh=True) == "queued" and q.job_ids == [waiting.id]
    assert Worker.all(connection=redis) == []  # every thread's worker registered its death


def test_four_threads_racing_on_one_message_send_it_once(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.tick()
    h.work()  # advance_round: step 0 queued, its send scheduled after the think delay
    rows = h.rows("select id::text from t_messages where status = 'queued'")
    assert len(rows) == 1
    message_id = rows[0]["id"]
    h.clock.advance(timedelta(minutes=1))
    for i in range(4):  # four copies of the claiming step (as after retries and a sweeper), four threads
        queues.enqueue_unique(queues.MESSAGES, "mirage.jobs.send.send_typed", job_id=f"dup:{i}", args=[message_id])
    run_worker([queues.MESSAGES], burst=True, scheduler=False, connection=h.redis, threads=4)
    assert h.sends() == 1
    jobs = [Job.fetch(queues.job_key(f"dup:{i}"), connection=h.redis) for i in range(4)]
    assert [j.get_status() for j in jobs] == ["finished"] * 4
    wait_until(
        lambda: h.rows("select status::text from t_messages where id = %s", message_id)[0]["status"] != "sending"
    )
    assert h.count("select count(*) as n from t_messages where direction = 'out'") == 1


def noop() -> str:
    return "ok"


def worker_key() -> dict[str, Any]:
    """The running worker's key as Redis has it now: its time to live and last heartbeat."""
    job = get_current_job()
    assert job is not None and job.worker_name
    r = queues.connection()
    key = f"rq:worker:{job.worker_name}"
    return {"ttl": r.ttl(key), "beat": r.hget(key, "last_heartbeat").decode()}


@pytest.mark.parametrize("jobs", [40])
def test_a_worker_sends_a_few_heartbeats_a_minute_not_three_a_job_and_its_key_stays_alive(
    redis: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    """rq's loop sends the worker's heartbeat (3 commands) three times and its "idle" state twice per job, half of
    a short job's Redis round trips (20.8 a job with rq's own loop); the worker key still lives and beats (ADR 0062)."""
    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    def send(conn: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(b"".join(bytes(c) for c in command) if isinstance(command, list) else bytes(command))
        original(conn, command, check_health)

    q = Queue(queues.ROUNDS, connection=redis)
    started = datetime.now(UTC).replace(microsecond=0)
    done = [q.enqueue(noop) for _ in range(jobs - 1)] + [q.enqueue(worker_key)]
    worker = make_worker([queues.ROUNDS], simple=True, connection=redis)
    monkeypatch.setattr(AbstractConnection, "send_packed_command", send)
    assert worker.work(burst=True, with_scheduler=False)
    monkeypatch.undo()
    assert [j.get_status(refresh=True) for j in done] == ["finished"] * jobs
    key = done[-1].return_value()
    assert key["ttl"] > 30, key  # alive: a job's timeout + 60 s, or the worker's TTL
    assert datetime.fromisoformat(key["beat"]) >= started
    # sent on their own (not with a job's start): HSET rq:worker:<name> last_heartbeat ..., EXPIRE, EXPIRE
    heartbeats = [
        c
        for c in sent
        if (p := c.split(b"\r\n"))[2:3] == [b"HSET"] and p[4].startswith(b"rq:worker:") and p[6] == b"last_heartbeat"
    ]
    assert len(heartbeats) <= 2, len(heartbeats)  # rq: 3 a job; here the beats sent with each job start suffice
    assert len(sent) / jobs <= 11.5, len(sent) / jobs
