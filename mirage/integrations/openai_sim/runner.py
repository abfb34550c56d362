"""Run the OpenAI simulator with uvicorn in a background thread on loopback (tests, the demo, benches).

with run_openai_sim(OpenAISimConfig(api_key="sk-test")) as sim:
    LLMConfig(base_url=sim.base_url, api_key="sk-test")
    sim.faults(rate_limit_next=1, retry_after_s=0.05)
"""

from __future__ import annotations

from typing import Any

import httpx

from mirage.errors import ServiceError
from mirage.integrations.evolution_sim.runner import ServerHandle, serve_in_thread
from mirage.integrations.openai_sim.app import SimState, create_openai_sim_app
from mirage.integrations.openai_sim.config import OpenAISimConfig


class OpenAISimHandle(ServerHandle):
    """A running simulator: `base_url` (…/v1) for the openai client, helpers for its /sim routes."""

    def __init__(self, handle: ServerHandle) -> None:
        super().__init__(handle.app, handle._server, handle._thread, handle.url)
        self.state: SimState = handle.app.state.sim

    def __enter__(self) -> OpenAISimHandle:
        return self

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        resp = httpx.request(method, self.url + path, json=body, timeout=10)
        if resp.status_code >= 400:
            raise ServiceError("openai-sim", f"{method} {path} -> {resp.status_code}: {resp.text[:200]}")
        return resp.json()

    def faults(self, **options: float) -> dict[str, Any]:
        """Inject faults, e.g. `sim.faults(error_next=3)` (see FaultConfig)."""
        result: dict[str, Any] = self._call("POST", "/sim/faults", options)
        return result

    def script(self, *replies: str) -> None:
        """The next chat answers, in order."""
        self._call("PUT", "/sim/replies", {"replies": list(replies)})

    def requests(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._call("GET", "/sim/requests")
        return rows


def run_openai_sim(config: OpenAISimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> OpenAISimHandle:
    """Start the simulator on a free loopback port (or `port`) and return once it accepts requests."""
    return OpenAISimHandle(serve_in_thread(create_openai_sim_app(config), host=host, port=port))
