"""Webhook delivery exactly as Evolution 2.3.6 does it (webhook.controller.ts#emit and retryWebhookRequest).

Envelope `{event, instance, data, destination, date_time, sender?, server_url, apikey}`; the instance's
`webhook.headers` as HTTP headers, with `jwt_key` replaced by `Authorization: Bearer <HS256 JWT>`; `/<event>`
appended when byEvents is on; retries with exponential backoff and jitter except on 400/401/403/404/422.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import re
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from mirage.integrations.evolution_sim import wire
from mirage.integrations.evolution_sim.config import SimConfig
from mirage.integrations.evolution_sim.state import SimInstance, event_key, event_suffix, now_iso

log = logging.getLogger(__name__)

_HTTP_URL = re.compile(r"^(https?://)")
USER_AGENT = "axios/1.7.9"
WEBHOOK_CONNECTIONS = 200  # deliveries in flight at once, each on a kept-alive connection ...
WEBHOOK_POOLS = 8  # ... in this many pools, taken in turn


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def evolution_jwt(key: str, now: float | None = None) -> str:
    """`jwt.sign({iat, exp: iat+600, app: 'evolution', action: 'webhook'}, key, {algorithm: 'HS256'})`.

    Signed by hand (it is three lines) so short keys, which Evolution accepts, raise no PyJWT warning.
    """
    iat = int(now if now is not None else time.time())
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = {"iat": iat, "exp": iat + 600, "app": "evolution", "action": "webhook"}
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode()
    signature = _b64url(hmac.new(key.encode(), signing_input, hashlib.sha256).digest())
    return f"{header}.{body}.{signature}"


def request_headers(webhook_headers: dict[str, str]) -> dict[str, str]:
    """The HTTP headers of a delivery: the configured ones, `jwt_key` turned into a Bearer JWT."""
    headers = {"content-type": "application/json", "user-agent": USER_AGENT, **webhook_headers}
    if "jwt_key" in headers:
        headers["Authorization"] = f"Bearer {evolution_jwt(headers.pop('jwt_key'))}"
    return headers


@dataclass
class Delivery:
    """One webhook POST as the simulator made it (kept for /sim/deliveries and tests)."""

    event: str
    instance: str
    url: str
    attempts: int = 0
    status: int | None = None
    ok: bool = False
    error: str | None = None
    duplicate: bool = False
    started_at: str = field(default_factory=now_iso)
    done: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class WebhookDispatcher:
    """Builds envelopes and posts them in the background, one task per delivery (so order is not guaranteed)."""

    def __init__(self, config: SimConfig, rng: random.Random) -> None:
        self.config = config
        self._rng = rng
        self._clients: list[httpx.AsyncClient] = []
        self._connections: wire.Connections | None = None
        self._turn = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.deliveries: list[Delivery] = []

    def _setup(self) -> None:
        # Created on first use so the app also works under httpx.ASGITransport, which runs no lifespan. Every
        # delivery in flight keeps its connection afterwards: with httpx's default of 20 kept alive, a busy simulator
        # opened and closed a TCP connection for most of them (ADR 0064).
        cfg = self.config
        if cfg.webhook_transport is not None or urllib.request.getproxies():
            # A given transport, or proxies from the environment (which httpx honours): the whole httpx client, in
            # WEBHOOK_POOLS pools, since httpcore scans its whole pool for every request.
            pools = 1 if cfg.webhook_transport is not None else WEBHOOK_POOLS
            limits = httpx.Limits(max_connections=WEBHOOK_CONNECTIONS // pools, max_keepalive_connections=None)
            self._clients = [
                httpx.AsyncClient(
                    transport=cfg.webhook_transport,
                    timeout=cfg.webhook_timeout_s,
                    follow_redirects=False,
                    limits=limits,
                )
                for _ in range(pools)
            ]
            return
        # Otherwise httpx's bytes on kept-alive connections without httpx's client and pool (ADR 0065).
        self._connections = wire.Connections(WEBHOOK_CONNECTIONS, httpx.Limits().keepalive_expiry or 5.0)

    async def _post(self, url: str, content: bytes, headers: dict[str, str]) -> int:
        """POST `content` as httpx.AsyncClient.post would; the response's status (its body is read and dropped)."""
        if not self._clients and self._connections is None:
            self._setup()
        if self._connections is not None:
            return await self._connections.post(url, content, headers, self.config.webhook_timeout_s)
        self._turn = (self._turn + 1) % len(self._clients)
        resp = await self._clients[self._turn].post(url, content=content, headers=headers)
        return resp.status_code

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients:
            await client.aclose()
        if self._connections is not None:
            await self._connections.aclose()
        self._clients, self._connections = [], None

    def envelope(self, inst: SimInstance, event: str, data: Any) -> dict[str, Any]:
        """The body Evolution posts; `sender` is absent until the instance was first connected."""
        url = inst.webhook.url if inst.webhook else ""
        body: dict[str, Any] = {
            "event": event,
            "instance": inst.name,
            "data": data,
            "destination": url,
            "date_time": now_iso(),
        }
        if inst.wuid:
            body["sender"] = inst.wuid
        body["server_url"] = self.config.server_url
        body["apikey"] = inst.token if self.config.expose_token and inst.token else None
        return body

    def emit(self, inst: SimInstance, event: str, data: Any, *, ignore_filter: bool = False) -> list[Delivery]:
        """Queue `event` for `inst`'s webhook if it is enabled and subscribed; returns the deliveries started."""
        hook = inst.webhook
        if hook is None or not hook.enabled:
            return []
        if not ignore_filter and event_key(event) not in hook.events:
            return []
        url = self.config.webhook_url_override or hook.url
        if not _HTTP_URL.match(url):
            return []  # Evolution silently sends nothing to a URL without http(s)://
        if hook.by_events:
            url = f"{url.rstrip('/')}/{event_suffix(event)}"
        body = self.envelope(inst, event, data)
        headers = request_headers(hook.headers)
        chaos = self.config.chaos
        copies = 2 if chaos.duplicate_rate and self._rng.random() < chaos.duplicate_rate else 1
        started = []
        for n in range(copies):
            hold = 0.0
            if chaos.reorder_rate and self._rng.random() < chaos.reorder_rate:
                hold = self._rng.uniform(0.0, chaos.reorder_max_s)
            d = Delivery(event=event, instance=inst.name, url=url, duplicate=n > 0)
            self.deliveries.append(d)
            started.append(d)
            task = asyncio.get_running_loop().create_task(self._deliver(d, url, body, headers, hold))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return started

    async def _deliver(self, d: Delivery, url: str, body: dict[str, Any], headers: dict[str, str], hold: float) -> None:
        cfg = self.config
        if hold:
            await asyncio.sleep(hold)
        content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        for attempt in range(1, cfg.webhook_max_attempts + 1):
            d.attempts = attempt
            try:
                status = await self._post(url, content, headers)
                d.status, d.error = status, None
                if 200 <= status < 300:
                    d.ok = True
                    break
                if status in cfg.non_retryable:
                    break
            except (httpx.HTTPError, *wire.ERRORS) as e:  # httpx names its errors after httpcore's
                d.status, d.error = None, type(e).__name__
            if attempt < cfg.webhook_max_attempts:
                await asyncio.sleep(cfg.scaled(self._retry_delay(attempt)))
        d.done = True
        log.debug("sim webhook", extra={"event": d.event, "instance": d.instance, "status": d.status, "ok": d.ok})

    def _retry_delay(self, attempt: int) -> float:
        """min(initial * 2^(n-1), max) ± jitter, never below initial (WEBHOOK_RETRY_* defaults)."""
        cfg = self.config
        base = min(cfg.webhook_initial_delay_s * 2 ** (attempt - 1), cfg.webhook_max_delay_s)
        jitter = base * cfg.webhook_jitter * (self._rng.random() * 2 - 1)
        return float(max(cfg.webhook_initial_delay_s, base + jitter))

    async def wait(self, deliveries: list[Delivery], timeout: float = 30.0) -> None:
        """Wait until these deliveries finished (delivered, refused, or out of attempts)."""
        deadline = time.monotonic() + timeout
        while not all(d.done for d in deliveries) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
