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
from urllib.parse import urlsplit

from redis.client import Pipeline
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus

from mirage.web.webhooks import follow_ups_inline

# A finished job's hash stays this long (wall seconds) unless the job set its own result_ttl, as RQ does: while
# it exists, `enqueue_unique` refuses the same job id.
RESULT_TTL_S = 500
_SET_HERE = ("host", "content-length")  # headers a webhook POST carries whatever the simulator passes


class WebhookService:
    """Mirage's webhook service (its ASGI app, lifespan included) called in this process on one event loop.

    A POST is one ASGI call with the scope, body and headers an HTTP server would hand the app (as httpx's
    ASGITransport builds them), without an HTTP client's request and response objects around it: the simulator
    already made the request, and only the status comes back."""

    def __init__(self, app: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = app
        self._inline = follow_ups_inline()  # the follow-up job is enqueued before the answer, in this thread
        self._inline.__enter__()
        self._lifespan: contextlib.AbstractAsyncContextManager[Any] = app.router.lifespan_context(app)
        self.loop.run_until_complete(self._lifespan.__aenter__())

    def post(self, url: str, content: bytes, headers: dict[str, str]) -> int:
        """The HTTP status the service answers `content` posted to `url` with (an exception in the app raises)."""
        return self.loop.run_until_complete(self._post(url, content, headers))

    async def _post(self, url: str, content: bytes, headers: dict[str, str]) -> int:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        raw = [(b"host", parts.netloc.encode()), (b"content-length", str(len(content)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items() if k.lower() not in _SET_HERE]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "headers": raw,
            "scheme": parts.scheme,
            "path": parts.path,
            "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(),
            "server": (parts.hostname, port),
            "client": ("127.0.0.1", 123),
            "root_path": "",
        }
        body = [content]
        status: list[int] = []
        answered = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if body:
                return {"type": "http.request", "body": body.pop(), "more_body": False}
            await answered.wait()  # as a server: the client goes away only once it has its answer
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                answered.set()

        await self.app(scope, receive, send)
        if not status:
            raise RuntimeError(f"the webhook service answered {url} without a response")
        return status[0]

    def forget_sessions(self) -> None:
        """Load the sessions again on the next webhook (as the service does at most once a wall second)."""
        self.app.state.mirage.auth.invalidate()

    def close(self) -> None:
        try:
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
