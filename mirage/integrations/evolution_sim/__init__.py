"""A local Evolution API v2.3.6 that speaks the real contract: routes, bodies, guards, webhooks, QR codes.

    from mirage.integrations.evolution_sim import SimConfig, create_sim_app, run_in_thread

`create_sim_app(config)` is the ASGI app (also `mirage sim evolution --port 8090`); `run_in_thread(config)`
serves it on a free loopback port and returns a handle with `.url`, `.stop()` and /sim helpers. Point its
webhooks at an ASGI app with `SimConfig(webhook_transport=httpx.ASGITransport(app=...))` or at one URL with
`webhook_url_override`. docs/evolution.md describes every option and /sim route.
"""

from __future__ import annotations

from mirage.integrations.evolution_sim.app import create_sim_app
from mirage.integrations.evolution_sim.config import ChaosConfig, HumanConfig, SimConfig
from mirage.integrations.evolution_sim.runner import ServerHandle, SimHandle, run_in_thread, serve_in_thread
from mirage.integrations.evolution_sim.webhooks import evolution_jwt
from mirage.integrations.evolution_sim.world import SimWorld

__all__ = [
    "ChaosConfig",
    "HumanConfig",
    "ServerHandle",
    "SimConfig",
    "SimHandle",
    "SimWorld",
    "create_sim_app",
    "evolution_jwt",
    "run_in_thread",
    "serve_in_thread",
]
