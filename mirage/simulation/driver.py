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
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from mirage.engine.clock import SettableClock
from mirage.jobs import queues
from mirage.jobs.cron import SCHEDULE, Periodic
from mirage.simulation.events import EventHeap
from mirage.simulation.inprocess import WebhookService, finished_job, run_job

log = logging.getLogger(__name__)

# Periodic jobs of `mirage cron` that change nothing the runtime decides: left out of the simulation.
NOT_SIMULATED = frozenset({"refresh_metrics", "link_auth_users", "reprocess_pending"})
# Ticks that decide what starts (rounds, outreach) run at their production interval while any window is open and
# every IDLE interval otherwise; the others (sweeper, level-triggered sync) only find what a crash or a config
# change left, neither of which happens inside a run: they run every HOUSEKEEPING interval.
STARTERS = frozenset({"conversation_tick", "outreach_tick"})
IDLE = timedelta(minutes=15)
HOUSEKEEPING = timedelta(minutes=15)

# One round trip per step of the drain (ADR 0063): RQ's non-blocking dequeue (LPOP each queue in order until one
# gives a job id whose hash exists, as Queue.dequeue_any and Job.fetch) with that hash; when every queue is empty,
# the earliest instant of the scheduled registries and the jobs due by ARGV[3] (registry, id, score, hash) instead.
# KEYS: the queues, then the registries; ARGV[1]: how many queues; ARGV[2]: the prefix of a job's hash key.
# Scores stay strings (a Lua number would be truncated in the answer).
STEP = """
local queues = tonumber(ARGV[1])
for i = 1, queues do
  while true do
    local id = redis.call('LPOP', KEYS[i])
    if not id then break end
    local hash = redis.call('HGETALL', ARGV[2] .. id)
    if #hash > 0 then return {1, KEYS[i], id, hash} end
  end
end
local first = false
local due = {}
for i = queues + 1, #KEYS do
  local entry = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if entry[2] then
    if not first or tonumber(entry[2]) < tonumber(first) then first = entry[2] end
    if tonumber(entry[2]) <= tonumber(ARGV[3]) then
      local listed = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', ARGV[3], 'WITHSCORES')
      for j = 1, #listed, 2 do
        table.insert(due, {i - queues, listed[j], listed[j + 1], redis.call('HGETALL', ARGV[2] .. listed[j])})
      end
    end
  end
end
return {0, first, due}
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
class Idle:
    """Every queue empty at `at`: the first instant of the scheduled registries, and the jobs due by `at`
    (score, id, job or None if its hash is gone, index of its queue and registry)."""

    at: datetime
    first: datetime | None
    due: list[tuple[float, str, Job | None, int]]


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
        self._step_sha = redis.script_load(STEP)
        # The last step's answer while nothing of the runtime ran since (every queue empty); None while unknown: a
        # job, a periodic job, a webhook or a release may have enqueued or scheduled something (ADR 0063).
        self._idle: Idle | None = None
        self._finished: Job | None = None  # a job that ran: its FINISHED status goes with the next step
        self._released: list[tuple[float, str, Job | None, int]] = []  # due jobs to move, with the next step
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
            self._idle = None  # the service may have enqueued a follow-up job
            status = self.service.post(url, content, headers)
        except Exception as e:  # the app answers every outcome itself; this is a bug in the transport
            log.warning("simulated webhook failed", extra={"event": event, "error": repr(e)[:200]})
            return None
        return status

    # -- the loop -----------------------------------------------------------------------------------------------

    def run_until(self, end: datetime, on_instant: Callable[[datetime], None] | None = None) -> None:
        """Run everything due up to `end` (inclusive), then leave the clock at `end`."""
        self._idle = None  # the caller may have enqueued jobs since the last run
        while True:
            self._drain()
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
        self._idle = None  # the caller may have enqueued jobs since the last run
        self._drain()

    def _drain(self) -> None:
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
        Redis is asked only if something of the runtime ran since it last said every queue was empty.
        """
        local = next((i for i, waiting in enumerate(self.periodic_due) if waiting), len(self.queues))
        if self._idle is None and (local > 0 or self._finished is not None or self._released):
            popped = self._step(local)
            if popped is not None:
                job, queue = popped
                self.counts.jobs += 1
                failed = run_job(self.worker, job, queue)
                if failed is None:
                    self._finished = job
                elif failed:
                    self.counts.failed_jobs += 1
                    info = (job.exc_info or "").strip().splitlines()
                    self.failures.append((str(job.description), info[-1] if info else "failed"))
                return True
        if local == len(self.queues):
            return False
        self._idle = None
        self._run_periodic(self.periodic_due[local].popleft())
        return True

    def _step(self, local: int) -> tuple[Job, Queue] | None:
        """One round trip: the last job's FINISHED status (see `run_job`) and the due jobs to move (see
        `_release_scheduled`), then the first job of the first `local` queues with its hash (STEP); when none of them
        has one, and they are all the queues, `_idle` is known."""
        pipe = self.redis.pipeline(transaction=bool(self._released))
        if self._released:
            pipe.multi()  # one transaction, as RQ's enqueue_job wants its pipeline
        if self._finished is not None:
            finished_job(self._finished, pipe)
            self._finished = None
        now = self.clock.now()
        for _, job_id, job, index in self._released:
            self.registries[index].remove(job_id, pipeline=pipe)
            if job is not None:
                self.queues[index].enqueue_job(job, pipeline=pipe)
        self._released = []
        keys = [q.key for q in self.queues[:local]] + [r.key for r in self.registries]
        pipe.evalsha(self._step_sha, len(keys), *keys, local, Job.redis_job_namespace_prefix, now.timestamp())
        answer = pipe.execute()[-1]
        if int(answer[0]) == 1:
            key, job_id, flat = _text(answer[1]), _text(answer[2]), answer[3]
            queue = self.by_key[key]
            job = self._job(job_id, flat, queue)
            if job is None:  # cannot be: STEP skips an id whose hash is gone
                raise RuntimeError(f"job {job_id} has no hash")
            return job, queue
        if local == len(self.queues):
            first = None if answer[1] is None else datetime.fromtimestamp(float(_text(answer[1])), now.tzinfo)
            due = [
                (float(_text(score)), _text(job_id), self._job(_text(job_id), flat, None), int(index) - 1)
                for index, job_id, score, flat in answer[2]
            ]
            self._idle = Idle(now, first, due)
        return None

    def _job(self, job_id: str, flat: list[Any], queue: Queue | None) -> Job | None:
        """The job of a hash read by STEP (as Job.fetch reads it); None if the hash is gone."""
        if not flat:
            return None
        job = Job(job_id, connection=self.redis, serializer=queue.serializer if queue is not None else None)
        job.restore(dict(zip(flat[::2], flat[1::2], strict=True)))
        return job

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
        if self._idle is None:  # a drain ends with every queue empty and `_idle` known; asked again only if not
            self._step(len(self.queues))
        return self._idle.first if self._idle is not None else None

    def _release_scheduled(self, now: datetime) -> bool:
        """Move scheduled jobs whose instant has come to their queues: by instant, then in the order scheduled."""
        if self._idle is not None and (self._idle.first is None or self._idle.first > now):
            return False
        if self._idle is None or self._idle.at != now:  # the jobs due by now, read in the same step
            self._step(len(self.queues))
        if self._idle is None or not self._idle.due:
            return False
        due = self._idle.due
        self._idle = None
        created = {job_id: job.created_at if job is not None and job.created_at else now for _, job_id, job, _ in due}
        self._released = sorted(due, key=lambda d: (d[0], created[d[1]], d[1]))  # moved by the next step
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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def describe(counts: Counts) -> dict[str, Any]:
    return {
        "jobs": counts.jobs,
        "failed_jobs": counts.failed_jobs,
        "events": counts.events,
        "ticks": counts.ticks,
        "instants": counts.instants,
    }
