"""Queue names and enqueueing with deterministic job ids, so re-running a producer enqueues nothing twice."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.job import JobStatus
from rq.registry import ScheduledJobRegistry

from mirage.backends import redis_backend, redis_client
from mirage.logs import current_context

# One queue per kind of work, so slow sends never delay instance lifecycle or the schedulers.
INSTANCES = "mirage-instances"  # provision / deprovision / refresh Evolution instances
MESSAGES = "mirage-messages"  # generate_reply, send_message
ROUNDS = "mirage-rounds"  # run_round, run_outreach_round, reschedules
EVENTS = "mirage-events"  # webhook post-processing that is too slow for the request
ALL_QUEUES = (INSTANCES, EVENTS, ROUNDS, MESSAGES)

_INVALID_ID = re.compile(r"[^A-Za-z0-9_-]")

DEFAULT_RETRY = Retry(max=5, interval=[5, 15, 60, 180, 600])


# What a long-running worker keeps between jobs (`kept_connections()`), per thread (each of a worker's job threads
# has its own, ADR 0059): Redis clients by ("redis", pid, URL), and `mirage.jobs.runtime.db()`'s idle Postgres
# connections by ("postgres", pid, URL). None outside a worker: tests, the CLI and the demo open per use, so nothing
# holds a scratch database or a swapped Redis.
_local = threading.local()


@contextlib.contextmanager
def kept_connections() -> Iterator[None]:
    """Inside this block (in this thread) `connection()` returns one Redis client (one connection pool) per URL
    instead of a new client, and a new TCP connection, per enqueue, and `runtime.db()` reuses its Postgres
    connection (an in-process worker runs hundreds of jobs a second; connecting costs a few ms each). Other
    threads keep their own. All closed at the end."""
    before = getattr(_local, "kept", None)
    _local.kept = {}
    try:
        yield
    finally:
        kept, _local.kept = _local.kept, before
        for value in kept.values():
            value.close()


def keep_connections_in_this_thread() -> None:
    """`kept_connections()` for the rest of this thread's life, for a service's long-lived pool threads: every
    enqueue of the thread reuses one Redis client (one connection pool) per URL. Outside such a store each enqueue
    makes a client whose connection only the garbage collector closes: a webhook service enqueueing a follow-up
    per message kept thousands open and reached Redis's limit of clients (10,000)."""
    if getattr(_local, "kept", None) is None:
        _local.kept = {}


def kept() -> dict[tuple[str, int, str], Any] | None:
    """This thread's current `kept_connections()` store, or None outside one."""
    store: dict[tuple[str, int, str], Any] | None = getattr(_local, "kept", None)
    return store


def connection() -> Redis:
    store = kept()
    if store is None:
        return redis_client()  # type: ignore[no-any-return]
    key = ("redis", os.getpid(), redis_backend().url)
    client: Redis | None = store.get(key)
    if client is None:
        client = store[key] = redis_client()
    return client


def queue(name: str, conn: Redis | None = None) -> Queue:
    return Queue(name, connection=conn or connection())


def job_key(text: str) -> str:
    """A valid RQ job id for `text` (RQ allows letters, digits, `_` and `-`): `provision:abc` -> `provision_abc`."""
    return _INVALID_ID.sub("_", text)


def enqueue_unique(
    queue_name: str,
    func: str,
    *,
    job_id: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    retry: Retry | None = DEFAULT_RETRY,
    conn: Redis | None = None,
    description: str | None = None,
    at: datetime | None = None,
    delay: timedelta | None = None,
) -> bool:
    """Enqueue `func` (a dotted path) under `job_id` unless a job with that id already exists in Redis.

    `job_id` may use any characters (`provision:<number id>`); it is mapped through `job_key()`.
    Returns True when a job was enqueued. The caller's log context (correlation id, tenant) travels in
    the job's meta so everything the job logs can be traced back to what caused it.

    `at` (timezone-aware, wall-clock) or `delay` schedule the job instead of queueing it now: it waits in
    RQ's scheduled registry until a worker running the scheduler (`mirage worker`, on by default) moves it
    to the queue. Never both. The id is taken from the moment of scheduling, so a retried producer cannot
    schedule it twice either.
    """
    if at is not None and delay is not None:
        raise ValueError("give at= or delay=, not both")
    if at is not None and at.tzinfo is None:
        raise ValueError("at= must be timezone-aware")
    q = queue(queue_name, conn)
    job_id = job_key(job_id)
    options: dict[str, Any] = {
        "args": tuple(args),
        "kwargs": dict(kwargs or {}),
        "job_id": job_id,
        "retry": retry,
        "meta": {"log_context": current_context()},
        "description": description,
        "result_ttl": 3600,
        "failure_ttl": 7 * 24 * 3600,
    }
    when = at if at is not None else (datetime.now(UTC) + delay if delay is not None else None)
    try:
        if when is None:
            q.enqueue_call(func, unique=True, **options)
        else:
            job = q.create_job(func, status=JobStatus.SCHEDULED, **options)
            # rq stores whole seconds: the next one, so the job is never early, then its exact instant (ADR 0050;
            # the workers' scheduler reads scores to the microsecond). Lowering a score never makes a job early.
            whole = when if not when.microsecond else when.replace(microsecond=0) + timedelta(seconds=1)
            q.schedule_job(job, whole, unique=True)
            if whole != when:
                registry = ScheduledJobRegistry(queue=q)  # type: ignore[no-untyped-call]
                q.connection.zadd(registry.key, {job.id: when.timestamp()}, xx=True)
    except DuplicateJobError:
        return False
    return True
