"""Run an ASGI app (the simulator, or any webhook receiver) with uvicorn in a background thread on loopback.

    with run_in_thread(SimConfig(time_factor=0.01)) as sim:
        client = sim.client()              # an EvolutionClient on sim.url with the global key
        ...
        sim.scan("mirage-acme-sales", "+5511912345678")

Tests, the demo and benches use this instead of subprocesses: a real HTTP server, started in milliseconds.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from typing import Any

import httpx
import uvicorn

from mirage.errors import ServiceError
from mirage.integrations.evolution.client import EvolutionClient, RetryPolicy
from mirage.integrations.evolution_sim.app import create_sim_app
from mirage.integrations.evolution_sim.config import SimConfig
from mirage.integrations.evolution_sim.world import SimWorld


class ServerHandle:
    """A uvicorn server running in a daemon thread; `url` is where it listens, `stop()` ends it."""

    def __init__(self, app: Any, server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
        self.app = app
        self.url = url
        self._server = server
        self._thread = thread

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Created with `IPPROTO_TCP`, not 0: asyncio only turns Nagle's algorithm off
    (TCP_NODELAY) on connections whose socket says it is TCP. Without it, uvicorn's two writes per response
    (headers, then body) wait for the client's delayed ACK: about 40 ms for every keep-alive request."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ServiceError("http", f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    return sock


def _start(app: Any, sock: socket.socket, startup_timeout: float) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="mirage-http")
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServiceError("http", "the server thread did not start")
        time.sleep(0.005)
    return server, thread


def serve_in_thread(app: Any, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 10.0) -> ServerHandle:
    """Serve `app` on `host:port` (0: a free port) in a background thread; returns once it accepts requests."""
    sock = _bind(host, port)
    url = f"http://{host}:{sock.getsockname()[1]}"
    server, thread = _start(app, sock, startup_timeout)
    return ServerHandle(app, server, thread, url)


class SimHandle(ServerHandle):
    """A running simulator: its URL, config and world, plus helpers for its /sim routes."""

    def __init__(self, handle: ServerHandle, config: SimConfig) -> None:
        super().__init__(handle.app, handle._server, handle._thread, handle.url)
        self.config = config
        self.world: SimWorld = handle.app.state.world

    def __enter__(self) -> SimHandle:
        return self

    @property
    def api_key(self) -> str:
        return self.config.api_key

    def client(self, *, api_key: str | None = None, retry: RetryPolicy | None = None, **kw: Any) -> EvolutionClient:
        """An EvolutionClient for this simulator (global key unless told otherwise)."""
        return EvolutionClient(self.url, api_key or self.api_key, retry=retry or RetryPolicy(), **kw)

    def _post(self, path: str, body: dict[str, Any], method: str = "POST") -> Any:
        resp = httpx.request(method, self.url + path, json=body, timeout=60)
        if resp.status_code >= 400:
            raise ServiceError("evolution-sim", f"{method} {path} -> {resp.status_code}: {resp.text[:200]}")
        return resp.json()

    def scan(self, name: str, number: str | None = None) -> dict[str, Any]:
        """Scan the instance's QR with `number`'s phone: the instance goes `open`."""
        result: dict[str, Any] = self._post(f"/sim/instances/{name}/scan", {"number": number} if number else {})
        return result

    def disconnect(self, name: str, status_reason: int = 401) -> dict[str, Any]:
        result: dict[str, Any] = self._post(f"/sim/instances/{name}/disconnect", {"statusReason": status_reason})
        return result

    def emit(
        self, name: str, event: str, data: Any, *, wait: bool = True, ignore_filter: bool = False
    ) -> list[dict[str, Any]]:
        """Deliver one event to the instance's webhook like Evolution; with `wait`, returns after delivery."""
        body = {"event": event, "data": data, "wait": wait, "ignore_filter": ignore_filter}
        result: list[dict[str, Any]] = self._post(f"/sim/instances/{name}/emit", body)["deliveries"]
        return result

    def say(self, number: str, instance: str, text: str) -> dict[str, Any]:
        """A simulated person (`number`) writes `text` to `instance`."""
        result: dict[str, Any] = self._post(f"/sim/contacts/{number}/say", {"instance": instance, "text": text})
        return result

    def script(self, number: str, replies: list[str]) -> None:
        self._post(f"/sim/contacts/{number}/script", {"replies": replies}, method="PUT")

    def chaos(self, **options: float) -> dict[str, Any]:
        """Change chaos at run time, e.g. `sim.chaos(fail_next=2)` (see ChaosConfig)."""
        result: dict[str, Any] = self._post("/sim/chaos", dict(options))
        return result

    def deliveries(self, instance: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"instance": instance, "event": event}.items() if v}
        rows: list[dict[str, Any]] = httpx.get(self.url + "/sim/deliveries", params=params, timeout=10).json()
        return rows


def run_in_thread(
    config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 10.0
) -> SimHandle:
    """Start the Evolution simulator on a free loopback port (or `port`); `server_url` is set to where it listens."""
    cfg = config or SimConfig()
    sock = _bind(host, port)
    url = f"http://{host}:{sock.getsockname()[1]}"
    if cfg.server_url == SimConfig.server_url:
        cfg = dataclasses.replace(cfg, server_url=url)
    app = create_sim_app(cfg)
    server, thread = _start(app, sock, startup_timeout)
    return SimHandle(ServerHandle(app, server, thread, url), cfg)
