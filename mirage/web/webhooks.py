"""`POST /api/webhooks/evolution[/{event}]`: parse, authenticate, store once, answer with a small JSON.

Order of checks: the body (400: not UTF-8, not JSON, too deep, no event/instance), then the instance and
its credentials (401, one reason for both so instance names cannot be probed), then storage (503 when
Postgres cannot take it, so Evolution retries). Evolution never retries 400/401 (contract §6.1).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from mirage.crypto import CryptoError
from mirage.ingest.pipeline import StorageUnavailable, schedule_reprocess
from mirage.ingest.sessions import SessionAuth
from mirage.integrations.evolution.events import Envelope, EnvelopeError, parse_envelope, route_matches
from mirage.logs import log_context
from mirage.web.auth import verify
from mirage.web.state import WebState

log = logging.getLogger(__name__)

PARSE_OFF_LOOP = 64 * 1024  # parse bodies bigger than this in a thread so one big body never stalls the loop


def answer(code: int, **fields: Any) -> JSONResponse:
    """`{"ok": ..., **fields}` with HTTP status `code`; fields that are None are left out."""
    return JSONResponse({"ok": 200 <= code < 300, **{k: v for k, v in fields.items() if v is not None}}, code)


async def evolution_webhook(request: Request) -> JSONResponse:
    state: WebState = request.app.state.mirage
    body = await request.body()
    try:
        env = await run_in_threadpool(parse_envelope, body) if len(body) > PARSE_OFF_LOOP else parse_envelope(body)
    except EnvelopeError as e:
        log.info("webhook refused: %s", e.reason, extra={"reason": e.reason, "detail": e.detail})
        return answer(400, reason=e.reason, detail=e.detail or None)
    try:
        auth, method = await _authenticate(state, env, request, body)
    except CryptoError as e:
        log.error("webhook secrets cannot be decrypted: %s", e, extra={"instance": env.instance})
        return answer(503, reason="secrets_unavailable")
    except StorageUnavailable as e:
        log.error("webhook auth lookup failed: %s", e.reason, extra={"instance": env.instance})
        return answer(503, reason="storage_unavailable")
    if auth is None or method is None:
        why = "unknown_instance" if auth is None else "bad_credentials"
        log.warning("webhook unauthorised", extra={"instance": env.instance, "why": why, "event": env.event})
        return answer(401, reason="unauthorized")
    with log_context(tenant=str(auth.tenant_id), instance=env.instance):
        return await _store(state, request, auth, env, method)


async def _authenticate(
    state: WebState, env: Envelope, request: Request, body: bytes
) -> tuple[SessionAuth | None, str | None]:
    headers = request.headers.raw
    auth = state.auth.peek(env.instance) or await state.load_auth(env.instance)
    method = verify(auth, headers, body) if auth is not None else None
    if method is None and auth is not None and state.auth.age(env.instance) >= state.auth.refresh_after:
        # The secret may have been rotated since the entry was cached: reload once and try again.
        auth = await state.load_auth(env.instance, max_age=state.auth.refresh_after)
        method = verify(auth, headers, body) if auth is not None else None
    return auth, method


async def _store(state: WebState, request: Request, auth: SessionAuth, env: Envelope, method: str) -> JSONResponse:
    route_event = request.path_params.get("event")
    mismatch = route_event is not None and not route_matches(route_event, env.event)
    if mismatch:
        # The body wins (it is what was authenticated and what Evolution meant); the route is kept as evidence.
        log.warning("webhook route and body disagree", extra={"route_event": route_event, "event": env.event})
        env = dataclasses.replace(env, payload={**env.payload, "_mirage": {"route_event": route_event}})
    try:
        outcome = await state.ingest(auth, env, method)
    except (StorageUnavailable, CryptoError) as e:
        state.auth.invalidate(env.instance)  # a stale cached session (deleted, recreated) is one cause
        log.error("webhook not stored: %s", e, extra={"event": env.event})
        return answer(503, reason="storage_unavailable")
    if outcome.status == "stored":
        state.auth.invalidate(env.instance)  # normalising failed: a stale cached session is the usual cause
        if outcome.event_id is not None:  # here, not in the writer thread: only this request waits for Redis
            await run_in_threadpool(schedule_reprocess, outcome.event_id)
    log.debug(
        "webhook %s", outcome.status, extra={"event": env.event, "auth": method, "outcome_reason": outcome.reason}
    )
    return answer(
        200,
        status=outcome.status,
        event=env.event,
        id=str(outcome.event_id) if outcome.event_id else None,
        reason=outcome.reason,
        route_mismatch=True if mismatch else None,
    )
