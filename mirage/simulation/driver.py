"""The virtual-time driver: runs every RQ job the runtime enqueues or schedules, the simulator's heap and the
periodic jobs of `mirage cron`, in instant order, on one SettableClock (ADR 0038).

At each virtual instant it runs, until nothing is left: queued RQ jobs (first in, first out, queues in a fixed
order), then the simulator's due actions (a webhook posted to Mirage's webhook service, a receipt, a reply), then
RQ's scheduled jobs whose instant has come (by time, then by the order they were scheduled), then the periodic
jobs due. Then the clock jumps to the next instant anything is due. Nothing sleeps.
"""

from __future__ import annotations

import logging
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from mirage.engine.clock import SettableClock
from mirage.jobs import queues
from mirage.jobs.cron import SCHEDULE, Periodic
from mirage.simulation.events import EventHeap
from mirage.simulation.inprocess import WebhookService, run_job

log = logging.getLogger(__name__)

# Periodic jobs of `mirage cron` that change nothing the runtime decides: left out of the simulation.
NOT_SIMULATED = frozenset({"refresh_metrics", "link_auth_users", "reprocess_pending"})
# Ticks that decide what starts (rounds, outreach) run at their production interval while any window is open and
# every IDLE interval otherwise; the others (sweeper, level-triggered sync) only find what a crash or a config
# change left, neither of which happens inside a run: they run every HOUSEKEEPING interval.
STARTERS = frozenset({"conversation_tick", "outreach_tick"})
IDLE = timedelta(minutes=15)
HOUSEKEEPING = timedelta(minutes=15)

# RQ's non-blocking dequeue (LPOP each queue in order until one gives a job id) as one round trip.
POP_FIRST = """
for _, key in ipairs(KEYS) do
  local id = redis.call('LPOP', key)
  if id then return {key, id} end
end
return false
"""

# A periodic job's gate: the first of some instants (in order) at which a run could start anything, else None.
Gate = Callable[[Sequence[datetime]], "datetime | None"]


class _Worker(SimpleWorker):
    """One in-process worker for the whole run, without the pub/sub command channel."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


@dataclass
class Periodical:
    periodic: Periodic
    next_at: datetime

    @property
    def name(self) -> str:
        return str(self.periodic.func.__name__)


@dataclass
class Counts:
    jobs: int = 0
    failed_jobs: int = 0
    events: int = 0
    ticks: int = 0
    instants: int = 0


class Driver:
    """Runs the runtime's jobs and the simulator's actions in virtual time."""

    def __init__(
        self,
        clock: SettableClock,
        heap: EventHeap,
        redis: Redis,
        *,
        tick: timedelta = timedelta(seconds=60),
        schedule: Sequence[Periodic] = SCHEDULE,
        gates: dict[str, Gate] | None = None,
    ) -> None:
        self.clock = clock
        self.heap = heap
        self.redis = redis
        self.tick = tick
        self.gates = dict(gates or {})  # periodic job name -> whether a run at an instant can start anything
        self.queues = [Queue(name, connection=redis) for name in queues.ALL_QUEUES]
        self.registries = [ScheduledJobRegistry(queue=q) for q in self.queues]  # type: ignore[no-untyped-call]
        self.by_key = {q.key: q for q in self.queues}
        self.queue_index = {q.name: i for i, q in enumerate(self.queues)}
        # Periodic jobs due now, per queue (see _run_one_job); called in process instead of through RQ (ADR 0051).
        self.periodic_due: list[deque[Periodical]] = [deque() for _ in self.queues]
        self._pop_first = redis.register_script(POP_FIRST)
        self.periodic = [Periodical(p, clock.now()) for p in schedule if p.func.__name__ not in NOT_SIMULATED]
        self.worker = _Worker(self.queues, connection=redis)
        self.worker.bootstrap(logging_level="WARNING")
        self.service: WebhookService | None = None  # Mirage's webhook service, set once its app is built
        self.counts = Counts()
        self.failures: list[tuple[str, str]] = []  # (job description, last line of its error)

    def close(self) -> None:
        if self.service is not None:
            self.service.close()
        self.worker.teardown()  # type: ignore[no-untyped-call]

    # -- the simulator's webhooks -----------------------------------------------------------------------------

    def post(self, url: str, content: bytes, headers: dict[str, str], event: str) -> int | None:
        """Deliver one webhook to Mirage's webhook service (its ASGI app, in this process, ADR 0051); the follow-up
        job the service enqueues for a message is enqueued before it answers (`follow_ups_inline`)."""
        if self.service is None:
            raise RuntimeError("the webhook service is not set")
        try:
            status = self.service.post(url, content, headers)
        except Exception as e:  # the app answers every outcome itself; this is a bug in the transport
            log.warning("simulated webhook failed", extra={"event": event, "error": repr(e)[:200]})
            return None
        return status

    # -- the loop -----------------------------------------------------------------------------------------------

    def run_until(self, end: datetime, on_instant: Callable[[datetime], None] | None = None) -> None:
        """Run everything due up to `end` (inclusive), then leave the clock at `end`."""
        while True:
            self.drain()
            upcoming = [t for t in (self.heap.next_time(), self._next_scheduled(), self._next_tick()) if t is not None]
            target = min(upcoming, default=None)
            if target is None or target > end:
                break
            self.clock.set(max(target, self.clock.now()))
            self.counts.instants += 1
            if on_instant is not None:
                on_instant(self.clock.now())
        if end > self.clock.now():
            self.clock.set(end)

    def drain(self) -> None:
        """Everything due at the clock's instant, and everything that causes at that same instant."""
        now = self.clock.now()
        while True:
            if self._run_one_job():
                continue
            event = self.heap.pop_due(now)
            if event is not None:
                self.counts.events += 1
                event.action()
                continue
            if self._release_scheduled(now) or self._enqueue_periodic(now):
                continue
            return

    def _run_one_job(self) -> bool:
        """The first job of the first queue that has one (queues in their fixed order), run in this process.

        A periodic job due now is the first of its queue (it was due when every queue was empty, see `drain`), so
        it runs before anything in its own queue and after anything in a queue before it, as if RQ had queued it.
        """
        local = next((i for i, waiting in enumerate(self.periodic_due) if waiting), len(self.queues))
        keys = [q.key for q in self.queues[:local]]
        while keys:  # as Queue.dequeue_any: LPOP the queues in order, in one round trip; skip a job hash gone
            popped = self._pop_first(keys=keys)
            if not popped:
                break
            key, job_id = (v.decode() if isinstance(v, bytes) else str(v) for v in popped)
            queue = self.by_key[key]
            try:
                job = Job.fetch(job_id, connection=self.redis, serializer=queue.serializer)
            except NoSuchJobError:
                continue
            self.counts.jobs += 1
            if run_job(self.worker, job, queue, self.redis):
                self.counts.failed_jobs += 1
                info = (job.exc_info or "").strip().splitlines()
                self.failures.append((str(job.description), info[-1] if info else "failed"))
            return True
        if local == len(self.queues):
            return False
        self._run_periodic(self.periodic_due[local].popleft())
        return True

    def _run_periodic(self, p: Periodical) -> None:
        """A periodic job's function, called here: the driver fixes its order, so RQ would only add bookkeeping."""
        self.counts.jobs += 1
        try:
            p.periodic.func()
        except Exception as e:  # as a failed RQ job: counted and listed, the run goes on
            log.exception("periodic job failed", extra={"job": p.name})
            self.counts.failed_jobs += 1
            self.failures.append((f"{p.periodic.func.__module__}.{p.name}()", traceback.format_exception_only(e)[-1]))

    def _next_scheduled(self) -> datetime | None:
        pipe = self.redis.pipeline(transaction=False)
        for r in self.registries:
            pipe.zrange(r.key, 0, 0, withscores=True)
        scores = [float(first[0][1]) for first in pipe.execute() if first]
        if not scores:
            return None
        return datetime.fromtimestamp(min(scores), self.clock.now().tzinfo)

    def _release_scheduled(self, now: datetime) -> bool:
        """Move scheduled jobs whose instant has come to their queues: by instant, then in the order scheduled."""
        limit = now.timestamp()
        pipe = self.redis.pipeline(transaction=False)
        for r in self.registries:
            pipe.zrangebyscore(r.key, "-inf", limit, withscores=True)
        found: list[list[Any]] = pipe.execute()
        if not any(found):
            return False
        due: list[tuple[float, datetime, str, Job | None, Queue, ScheduledJobRegistry]] = []
        for q, r, entries in zip(self.queues, self.registries, found, strict=True):
            for raw, score in entries:
                job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
                try:
                    job: Job | None = Job.fetch(job_id, connection=self.redis)
                except NoSuchJobError:
                    job = None
                created = job.created_at if job is not None and job.created_at is not None else now
                due.append((float(score), created, job_id, job, q, r))
        pipe = self.redis.pipeline()
        pipe.multi()  # one round trip for all of them, as RQ's enqueue_job wants its pipeline
        for _, _, job_id, job, q, r in sorted(due, key=lambda d: (d[0], d[1], d[2])):
            r.remove(job_id, pipeline=pipe)
            if job is not None:
                q.enqueue_job(job, pipeline=pipe)
        pipe.execute()
        return True

    def _next_tick(self) -> datetime | None:
        return min((p.next_at for p in self.periodic), default=None)

    def _enqueue_periodic(self, now: datetime) -> bool:
        due = [p for p in self.periodic if p.next_at <= now]
        for p in due:  # run by `_run_one_job` in queue order, as RQ would dequeue them
            self.periodic_due[self.queue_index[p.periodic.queue]].append(p)
            p.next_at = now + self.interval(p, now)
            self.counts.ticks += 1
        return bool(due)

    def interval(self, p: Periodical, now: datetime) -> timedelta:
        """When a periodic job runs next (see STARTERS, IDLE and HOUSEKEEPING)."""
        base = max(timedelta(seconds=p.periodic.interval_s), self.tick)
        if p.name not in STARTERS:
            return max(base, HOUSEKEEPING)
        gate = self.gates.get(p.name)
        if gate is None:
            return base
        # Now, else the next whole IDLE step, or as soon as the schedule opens a window before that.
        probes = [now]
        while (probe := probes[-1] + base) < now + IDLE:
            probes.append(probe)
        first = gate(probes)
        if first is None:
            return IDLE
        return base if first == now else first - now


def describe(counts: Counts) -> dict[str, Any]:
    return {
        "jobs": counts.jobs,
        "failed_jobs": counts.failed_jobs,
        "events": counts.events,
        "ticks": counts.ticks,
        "instants": counts.instants,
    }
