"""The runtime live on a time-scaled clock, in this process (`mirage demo --keep-running`): the same jobs as
`mirage worker` and `mirage cron`, with time running `factor` times faster, so a person watching the metrics
page sees rounds start, messages go out and turns pass."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from redis import Redis
from rq import Queue
from rq.exceptions import StopRequested
from rq.registry import ScheduledJobRegistry

from mirage.engine.clock import ScaledClock
from mirage.jobs import queues
from mirage.jobs.cron import SCHEDULE
from mirage.simulation.driver import NOT_SIMULATED, _Worker

log = logging.getLogger(__name__)


def scaled_clock(origin: datetime, factor: float) -> ScaledClock:
    """A clock that reads `origin` now and runs `factor` times faster than the wall."""
    return ScaledClock(origin, time.time(), factor)


def run_live(clock: ScaledClock, redis: Redis, stop: threading.Event, poll_s: float = 0.05) -> int:
    """Run every queued and due job, and `mirage cron`'s periodic jobs at their (scaled) interval, until `stop`.

    RQ's scheduled jobs carry wall instants here (ScaledClock.wall_time), so they are released by the wall clock.
    Returns how many jobs ran.
    """
    qs = [Queue(name, connection=redis) for name in queues.ALL_QUEUES]
    keys = [(q, ScheduledJobRegistry(queue=q).key) for q in qs]  # type: ignore[no-untyped-call]
    worker = _Worker(qs, connection=redis)
    worker.bootstrap(logging_level="WARNING")
    periodic = {p.func.__name__: (p, time.time()) for p in SCHEDULE if p.func.__name__ not in NOT_SIMULATED}
    ran = 0
    try:
        while not stop.is_set():
            wall = time.time()
            for q, key in keys:
                for raw in redis.zrangebyscore(key, "-inf", wall):
                    job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
                    redis.zrem(key, job_id)
                    job = q.fetch_job(job_id)
                    if job is not None:
                        q.enqueue_job(job)
            for name, (p, due) in list(periodic.items()):
                if due <= wall:
                    func = f"{p.func.__module__}.{p.func.__name__}"
                    queues.enqueue_unique(p.queue, func, job_id=f"live:{name}:{wall:.3f}", retry=None, conn=redis)
                    periodic[name] = (p, wall + p.interval_s / clock.factor)
            while (result := Queue.dequeue_any(qs, None, connection=redis)) is not None:
                worker.execute_job(*result)
                ran += 1
            stop.wait(poll_s)
    except StopRequested:  # Ctrl-C, through the handler RQ's worker installed
        pass
    finally:
        worker.teardown()  # type: ignore[no-untyped-call]
    return ran
