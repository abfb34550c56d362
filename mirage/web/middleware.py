"""One pure ASGI middleware for every request: a correlation id, and a body limit and a read timeout enforced while
the body streams.

One layer instead of two, with the request's state in one small object instead of a closure per concern: at
webhook rates every layer and allocation on the path is paid thousands of times a second.
"""

from __future__ import annotations

import asyncio
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
JSON_CONTENT_TYPE = (b"content-type", b"application/json")


def json_body(body: dict[str, object]) -> bytes:
    """A small JSON answer, byte for byte what Starlette's JSONResponse renders."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def send_json(send: Send, status: int, body: dict[str, object]) -> None:
    """A complete small JSON response, for code that answers without a Response object."""
    payload = json_body(body)
    headers = [(b"content-length", str(len(payload)).encode()), JSON_CONTENT_TYPE]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class BodyTooLarge(Exception):
    """Raised from `receive` once the body passes the limit; the middleware turns it into a 413."""


class BodyTimeout(Exception):
    """Raised from `receive` when the body has not arrived in time; the middleware turns it into a 408."""


class RequestContext:
    """Per request: binds `X-Request-ID` (or a new id) to every log line and echoes it in the response, with the
    time the app took in `Server-Timing: app;dur=<ms>` when `server_timing` is on (off by default: a timing tells
    a caller which branch ran); refuses a body over `max_body` bytes with a 413, at once from Content-Length,
    else as soon as the chunks add up (nothing past the limit is read, chunked or not); answers 408 when the
    body has not fully arrived `body_timeout` seconds after the request started (the connection then closes);
    logs the request at DEBUG and an unhandled error with its correlation id."""

    def __init__(self, app: ASGIApp, max_body: int, body_timeout: float = 10.0, server_timing: bool = False) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.server_timing = server_timing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = declared = None
        for key, value in scope["headers"]:
            if key == REQUEST_ID_HEADER:
                given = value
            elif key == b"content-length":
                declared = value
        # Not a secret, only unique enough to follow one request: no need to pay for os.urandom each time.
        cid = given.decode("ascii") if given and _VALID_REQUEST_ID.fullmatch(given) else f"{_ids.getrandbits(64):016x}"
        exchange = _Exchange(receive, send, cid, self.max_body, self.body_timeout, self.server_timing)
        with log_context(cid):
            try:
                if declared is not None and (not declared.strip().isdigit() or int(declared) > self.max_body):
                    too_big = declared.strip().isdigit()
                    log.info("request body refused", extra={"reason": "body_too_large" if too_big else "bad_length"})
                    await send_json(exchange.send, 413 if too_big else 400, _refusal(too_big, self.max_body))
                    return
                await self.app(scope, exchange.receive, exchange.send)
            except BodyTooLarge:
                log.info("request body refused", extra={"reason": "body_too_large", "bytes_read": exchange.received})
                if not exchange.status:
                    await send_json(exchange.send, 413, _refusal(True, self.max_body))
            except BodyTimeout:
                log.info("request body too slow", extra={"reason": "body_timeout", "bytes_read": exchange.received})
                if not exchange.status:
                    await send_json(exchange.send, 408, {"ok": False, "reason": "body_timeout"})
            except Exception:
                log.exception("unhandled error in %s %s", scope["method"], scope["path"])
                raise
            finally:
                if log.isEnabledFor(logging.DEBUG):
                    took = round((time.perf_counter() - exchange.started) * 1000, 2)
                    log.debug("%s %s %s", scope["method"], scope["path"], exchange.status, extra={"ms": took})


class _Exchange:
    """One request's side of the middleware: counts the body it lets through, tags the response it sends."""

    __slots__ = (
        "_receive",
        "_send",
        "body_done",
        "cid",
        "deadline",
        "max_body",
        "received",
        "started",
        "status",
        "timing",
    )

    def __init__(
        self, receive: Receive, send: Send, cid: str, max_body: int, body_timeout: float, timing: bool
    ) -> None:
        self._receive = receive
        self._send = send
        self.cid = cid
        self.max_body = max_body
        self.received = 0
        self.status = 0
        self.started = time.perf_counter()
        self.deadline = asyncio.get_running_loop().time() + body_timeout
        self.timing = timing
        self.body_done = False

    async def receive(self) -> Message:
        if self.body_done:  # e.g. waiting for a disconnect: no deadline on that
            return await self._receive()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            raise BodyTimeout from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_done = True
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_body:
                raise BodyTooLarge
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            extra = [(REQUEST_ID_HEADER, self.cid.encode())]
            if self.timing:
                took = f"app;dur={(time.perf_counter() - self.started) * 1000:.2f}".encode()
                extra.append((b"server-timing", took))
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await self._send(message)


def _refusal(too_big: bool, limit: int) -> dict[str, object]:
    if too_big:
        return {"ok": False, "reason": "body_too_large", "limit": limit}
    return {"ok": False, "reason": "bad_content_length"}
