"""The simulation's two in-process calls (ADR 0051): Mirage's webhook service as an ASGI app called without a
socket, and an RQ job run without a worker's per-job bookkeeping.

Both keep the code that decides anything: a webhook goes through the service's whole ASGI app (middleware,
credentials, parsing, group-committed storage, the follow-up job) exactly as over HTTP, and a job is RQ's own
`Job.perform()` of the runtime's job function, in the order the driver fixes. What is left out is transport: a
loopback socket and uvicorn's HTTP parsing for each webhook, and the worker's heartbeats, started/finished
registries, result stream and statistics for each job (a job that raises still goes through the worker's own
failure handling, retries included).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import httpx
from redis.client import Pipeline
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus

from mirage.web.webhooks import follow_ups_inline

# A finished job's hash stays this long (wall seconds) unless the job set its own result_ttl, as RQ does: while
# it exists, `enqueue_unique` refuses the same job id.
RESULT_TTL_S = 500


class WebhookService:
    """Mirage's webhook service (its ASGI app, lifespan included) called in this process on one event loop."""

    def __init__(self, app: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = app
        self._inline = follow_ups_inline()  # the follow-up job is enqueued before the answer, in this thread
        self._inline.__enter__()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=60)
        self._lifespan: contextlib.AbstractAsyncContextManager[Any] = app.router.lifespan_context(app)
        self.loop.run_until_complete(self._lifespan.__aenter__())

    def post(self, url: str, content: bytes, headers: dict[str, str]) -> int:
        """The HTTP status the service answers `content` posted to `url` with."""
        response = self.loop.run_until_complete(self.client.post(url, content=content, headers=headers))
        return response.status_code

    def forget_sessions(self) -> None:
        """Load the sessions again on the next webhook (as the service does at most once a wall second)."""
        self.app.state.mirage.auth.invalidate()

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.client.aclose())
            self.loop.run_until_complete(self._lifespan.__aexit__(None, None, None))
        finally:
            self.loop.close()
            self._inline.__exit__(None, None, None)


def run_job(worker: SimpleWorker, job: Job, queue: Queue) -> bool | None:
    """Run a dequeued job in this process: None if it succeeded, else whether it failed for good (no retry left).

    Success: the caller writes the job's FINISHED status and expiry with `finished_job`, before anything else of
    the runtime runs (the driver sends them with its next round trip, ADR 0063).
    Failure: the worker's own handling (the exception handlers, the failed registry or RQ's Retry).
    """
    try:
        job.perform()
    except Exception:
        exc_info = sys.exc_info()
        execution = worker.prepare_execution(job)
        worker._finalize_failure(job, queue, execution, exc_info)
        return job.get_status(refresh=True) == JobStatus.FAILED
    return None


def finished_job(job: Job, pipe: Pipeline) -> None:
    """A job that succeeded, as RQ leaves it: its status and end in its hash, which expires after its result_ttl."""
    job.set_status(JobStatus.FINISHED, pipeline=pipe)
    pipe.expire(job.key, job.result_ttl if job.result_ttl is not None and job.result_ttl > 0 else RESULT_TTL_S)
