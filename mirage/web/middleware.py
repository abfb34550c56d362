"""Pure ASGI middleware: a correlation id per request, and a body limit enforced while the body streams in."""

from __future__ import annotations

import json
import logging
import random
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mirage.logs import log_context

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
_ids = random.Random()  # seeded from os.urandom once
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


async def send_json(send: Send, status: int, body: dict[str, object]) -> None:
    """A complete small JSON response, for middleware that answers before the app runs."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class CorrelationIdMiddleware:
    """Binds `X-Request-ID` (or a new id) to every log line of the request and echoes it in the response,
    with the time the app took in `Server-Timing: app;dur=<ms>`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == REQUEST_ID_HEADER), None)
        # Not a secret, only unique enough to follow one request: no need to pay for os.urandom each time.
        cid = given.decode("ascii") if given and _VALID_REQUEST_ID.fullmatch(given) else f"{_ids.getrandbits(64):016x}"
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                took = f"app;dur={(time.perf_counter() - started) * 1000:.2f}".encode()
                extra = [(REQUEST_ID_HEADER, cid.encode()), (b"server-timing", took)]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        with log_context(cid):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                log.exception("unhandled error in %s %s", scope["method"], scope["path"])
                raise
            finally:
                log.debug(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={"ms": round((time.perf_counter() - started) * 1000, 2)},
                )


class BodyTooLarge(Exception):
    """Raised from `receive` once the body passes the limit; the middleware turns it into a 413."""


class BodyLimitMiddleware:
    """413 for a body over `max_body` bytes: at once from Content-Length, else as soon as the chunks add up.

    Nothing past the limit is read, whether the client declared a length or sent the body chunked.
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.max_body):
            too_big = declared.strip().isdigit()
            log.info("request body refused", extra={"reason": "body_too_large" if too_big else "bad_length"})
            await send_json(send, 413 if too_big else 400, _refusal(too_big, self.max_body))
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            log.info("request body refused", extra={"reason": "body_too_large", "bytes_read": received})
            if not started:
                await send_json(send, 413, _refusal(True, self.max_body))


def _refusal(too_big: bool, limit: int) -> dict[str, object]:
    if too_big:
        return {"ok": False, "reason": "body_too_large", "limit": limit}
    return {"ok": False, "reason": "bad_content_length"}
