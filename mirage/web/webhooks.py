"""`POST /api/webhooks/evolution[/{event}]`: parse, authenticate, store once, answer with a small JSON.

Order of checks: the credentials, before the body is parsed (401, one answer and one path for an unknown
instance and a wrong secret, so instance names cannot be probed), then the body (400: not UTF-8, not JSON, too
deep, no event/instance; 401 when it names another instance than the credentials), then storage (503 when
Postgres cannot take it, so Evolution retries). Evolution never retries 400/401 (contract §6.1).

The endpoint is a plain ASGI app: no Request or Response objects on a path taken thousands of times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mirage.crypto import CryptoError
from mirage.db.evolution_sessions import SessionAuth
from mirage.ingest.pipeline import StorageUnavailable, schedule_reprocess
from mirage.integrations.evolution.envelope import Envelope, EnvelopeError, parse_envelope, route_matches
from mirage.integrations.evolution.models import WEBHOOK_PATH
from mirage.jobs.follow_ups import schedule_on_message
from mirage.jobs.queues import keep_connections_in_this_thread
from mirage.logs import log_context
from mirage.web.auth import Headers, identify, presents_credentials
from mirage.web.middleware import send_json
from mirage.web.state import WebState

log = logging.getLogger(__name__)

PARSE_OFF_LOOP = 64 * 1024  # parse bodies bigger than this in a thread so one big body never stalls the loop
Answer = tuple[int, dict[str, Any]]


def fields(code: int, **values: Any) -> dict[str, Any]:
    """`{"ok": ..., **values}` for HTTP status `code`; values that are None are left out."""
    return {"ok": 200 <= code < 300, **{k: v for k, v in values.items() if v is not None}}


def answer(code: int, **values: Any) -> JSONResponse:
    """The same small JSON as a Starlette response, for the routes that use Starlette's request cycle."""
    return JSONResponse(fields(code, **values), code)


class WebhookRoutes:
    """Sends POSTs to the webhook paths straight to the endpoint, past Starlette's exception layer and router: the
    endpoint answers every outcome itself, so they would only cost time. Anything else (another method, a mounted
    root path) goes on to Starlette, whose routes for the same paths give 405s and the same endpoint."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.endpoint = EvolutionWebhook()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            if path == WEBHOOK_PATH:
                await self.endpoint(scope, receive, send)
                return
            event = path[len(WEBHOOK_PATH) + 1 :] if path.startswith(WEBHOOK_PATH + "/") else ""
            if event and "/" not in event:  # what Starlette's `{event}` matches
                scope["path_params"] = {"event": event}
                await self.endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


class EvolutionWebhook:
    """The webhook route's ASGI app; the body limit is enforced by the middleware's `receive`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            log.info("webhook client went away before sending its body")
            return
        state: WebState = scope["app"].state.mirage
        try:
            code, values = await handle(state, scope["headers"], scope.get("path_params", {}).get("event"), body)
        except Exception:  # a bug: answer it here, so the keep-alive connection stays usable for the next request
            log.exception("webhook failed unexpectedly")
            code, values = 500, fields(500, reason="internal_error")
        await send_json(send, code, values)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def handle(state: WebState, headers: Headers, route_event: str | None, body: bytes) -> Answer:
    """The answer to one delivery: status code and JSON fields."""
    if not presents_credentials(headers):
        log.warning("webhook unauthorised", extra={"why": "no_credentials"})
        return 401, fields(401, reason="unauthorized")
    try:
        found = await _authenticate(state, headers, body)
    except CryptoError as e:
        log.error("webhook secrets cannot be decrypted: %s", e)
        return 503, fields(503, reason="secrets_unavailable")
    except StorageUnavailable as e:
        log.error("webhook auth lookup failed: %s", e.reason)
        return 503, fields(503, reason="storage_unavailable")
    if found is None:
        if (await state.auth.directory()).unreadable:  # it may be theirs: let Evolution retry once keys are back
            log.error("webhook not authenticated while some sessions' secrets cannot be decrypted")
            return 503, fields(503, reason="secrets_unavailable")
        log.warning("webhook unauthorised", extra={"why": "no_session_matches"})
        return 401, fields(401, reason="unauthorized")
    auth, method = found
    try:
        env = await run_in_threadpool(parse_envelope, body) if len(body) > PARSE_OFF_LOOP else parse_envelope(body)
    except EnvelopeError as e:
        log.info("webhook refused: %s", e.reason, extra={"reason": e.reason, "detail": e.detail})
        return 400, fields(400, reason=e.reason, detail=e.detail or None)
    if env.instance != auth.instance_name:  # another instance's credentials: the same answer as a wrong secret
        log.warning("webhook unauthorised", extra={"instance": env.instance, "why": "other_instance"})
        return 401, fields(401, reason="unauthorized")
    with log_context(tenant=str(auth.tenant_id), instance=env.instance):
        return await _store(state, route_event, auth, env, method)


async def _authenticate(state: WebState, headers: Headers, body: bytes) -> tuple[SessionAuth, str] | None:
    """Who sent this, before the body is parsed; a miss is looked up again in a directory loaded after it (at most
    one load a second: a miss may wait up to that long)."""
    found = identify(await state.auth.directory(), headers, body)
    if found is None:  # a new session, or a secret rotated since the last load
        await state.auth.refresh()
        found = identify(await state.auth.directory(), headers, body)
    return found


FOLLOWED_EVENTS = frozenset({"messages.upsert", "send.message"})
FOLLOW_UP_THREADS = 4
# Each follow-up thread keeps its Redis client for its life (one connection a thread, not one an enqueue).
_FOLLOW_UPS = ThreadPoolExecutor(
    max_workers=FOLLOW_UP_THREADS, thread_name_prefix="mirage-follow-up", initializer=keep_connections_in_this_thread
)


class _InCallingThread(Executor):
    """Runs each task at once in the submitting thread (see `follow_ups_inline`)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        done: Future[Any] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except Exception as e:
            done.set_exception(e)
        return done


@contextlib.contextmanager
def follow_ups_inline() -> Iterator[None]:
    """Inside this block a follow-up runs before the delivery is answered, in the thread serving it, instead of in
    the pool: `mirage simulate` delivers one webhook at a time in its own process (ADR 0051), so nothing waits
    for it that would not wait for the pool, and no thread hands it over."""
    global _FOLLOW_UPS
    before, _FOLLOW_UPS = _FOLLOW_UPS, _InCallingThread()  # type: ignore[assignment]
    try:
        yield
    finally:
        _FOLLOW_UPS = before


def _follow_up(message_id: str) -> bool:
    return schedule_on_message(message_id)


async def _store(state: WebState, route_event: str | None, auth: SessionAuth, env: Envelope, method: str) -> Answer:
    mismatch = route_event is not None and not route_matches(route_event, env.event)
    if mismatch:
        # The body wins (it is what was authenticated and what Evolution meant); the route is kept as evidence.
        log.warning("webhook route and body disagree", extra={"route_event": route_event, "event": env.event})
        env = dataclasses.replace(env, payload={**env.payload, "_mirage": {"route_event": route_event}})
    try:
        outcome = await state.ingest(auth, env, method)
    except (StorageUnavailable, CryptoError) as e:
        state.auth.invalidate()  # a stale cached session (deleted, recreated) is one cause
        log.error("webhook not stored: %s", e, extra={"event": env.event})
        return 503, fields(503, reason="storage_unavailable")
    if outcome.status == "stored":
        state.auth.invalidate()  # normalising failed: a stale cached session is the usual cause
        if outcome.event_id is not None:  # in a thread: Redis may hang, the event loop must not
            await run_in_threadpool(schedule_reprocess, outcome.event_id)
    elif outcome.status == "processed" and outcome.message_id and env.event in FOLLOWED_EVENTS and not outcome.ours:
        # The conversation runtime reacts to messages off the hot path: one job (passes a round's turn, settles
        # our own sends), enqueued after the event is committed by a small thread pool the answer never waits
        # for. If Redis is down the job is lost, and the runtime's sweeper finds the message within a minute.
        # Our own send's echo folded into its outbox row (`ours`) needs no job: on_message would only say "ours".
        asyncio.get_running_loop().run_in_executor(_FOLLOW_UPS, _follow_up, str(outcome.message_id))
    if log.isEnabledFor(logging.DEBUG):
        extra = {"event": env.event, "auth": method, "outcome_reason": outcome.reason}
        log.debug("webhook %s", outcome.status, extra=extra)
    values = fields(
        200,
        status=outcome.status,
        event=env.event,
        id=str(outcome.event_id) if outcome.event_id else None,
        reason=outcome.reason,
        route_mismatch=True if mismatch else None,
    )
    return 200, values
