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

import httpx
from redis.client import Pipeline
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus

from mirage.web.webhooks import follow_ups_inline

# A finished job's hash stays this long (wall seconds) unless the job set its own result_ttl, as RQ does: while
# it exists, `enqueue_unique` refuses the same job id.
RESULT_TTL_S = 500
_SET_HERE = ("host", "content-length")  # headers a webhook POST carries whatever the simulator passes


class LoopOf:
    """An ASGI app that notes the event loop its server runs it on (at lifespan startup), for `InProcessTransport`."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


class InProcessTransport(httpx.BaseTransport):
    """The runtime's Evolution calls to the simulator as ASGI calls on the simulator server's own event loop: the
    EvolutionClient and httpx client code run as over HTTP, and the simulator's app answers on the loop it always
    runs on; a loopback socket and HTTP/1.1 parsing on both ends are what is left out (ADR 0051)."""

    def __init__(self, app: LoopOf) -> None:
        self.app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        loop = self.app.loop
        if loop is None or loop.is_closed():
            raise httpx.ConnectError("the simulator is not running", request=request)
        url = request.url
        headers = [(k.lower(), v) for k, v in request.headers.raw]
        scope = _scope(request.method, url.scheme, url.host, url.port, url.path, url.query, headers)
        timeout = (request.extensions.get("timeout") or {}).get("read")
        future = asyncio.run_coroutine_threadsafe(_asgi_call(self.app.app, scope, request.read()), loop)
        try:
            status, headers, body = future.result(timeout)
        except TimeoutError as e:
            future.cancel()
            raise httpx.ReadTimeout("the simulator did not answer in time", request=request) from e
        return httpx.Response(status, headers=headers, content=body, request=request)


def _scope(
    method: str, scheme: str, host: str | None, port: int | None, path: str, query: bytes, headers: list[Any]
) -> dict[str, Any]:
    """The ASGI scope an HTTP server hands an app for one request (as httpx's ASGITransport builds it)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "headers": headers,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "server": (host, port),
        "client": ("127.0.0.1", 123),
        "root_path": "",
    }


async def _asgi_call(app: Any, scope: dict[str, Any], body: bytes) -> tuple[int, list[Any], bytes]:
    """One request to an ASGI app: its status, headers and body."""
    pending = [body]
    answered = asyncio.Event()
    start: list[Any] = []
    parts: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        await answered.wait()  # as a server: the client goes away only once it has its answer
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            start.append(message)
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                answered.set()

    await app(scope, receive, send)
    if not start:
        raise RuntimeError(f"{scope['path']} answered without a response")
    return start[0]["status"], start[0].get("headers", []), b"".join(parts)


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
        scope = _scope("POST", parts.scheme, parts.hostname, port, parts.path, parts.query.encode(), raw)
        status, _, _ = await _asgi_call(self.app, scope, content)
        return status

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
