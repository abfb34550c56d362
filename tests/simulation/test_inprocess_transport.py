"""`mirage simulate`'s runtime reaches the simulator without a socket (ADR 0051): the same answers as over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from mirage.integrations.evolution.client import NO_RETRY, EvolutionClient, EvolutionServerError
from mirage.integrations.evolution.models import WebhookConfig
from mirage.integrations.evolution_sim.app import create_sim_app
from mirage.integrations.evolution_sim.config import SimConfig
from mirage.integrations.evolution_sim.runner import ServerHandle, serve_in_thread
from mirage.simulation.inprocess import InProcessTransport, LoopOf

PHONE_A, PHONE_B = "+5511912345678", "+5511987654321"
HOOK = WebhookConfig(
    url="http://127.0.0.1:9/api/webhooks/evolution", secret="s3cr3t-" + "x" * 36, jwt_key="jwt-key-" + "y" * 35
)


@pytest.fixture
def served() -> Iterator[tuple[LoopOf, ServerHandle]]:
    app = LoopOf(create_sim_app(SimConfig(time_factor=0.01, seed=3)))
    handle = serve_in_thread(app)
    try:
        yield app, handle
    finally:
        handle.stop()


def clients(app: LoopOf, url: str) -> tuple[EvolutionClient, EvolutionClient]:
    key = SimConfig().api_key
    http = httpx.Client(base_url=url, transport=InProcessTransport(app))
    return EvolutionClient(url, key, retry=NO_RETRY, http=http), EvolutionClient(url, key, retry=NO_RETRY)


def test_calls_without_a_socket_get_the_answers_the_simulator_gives_over_http(
    served: tuple[LoopOf, ServerHandle],
) -> None:
    app, handle = served
    inproc, over_http = clients(app, handle.url)
    with inproc, over_http:
        inproc.create_instance("a", webhook=HOOK)
        over_http.create_instance("b", webhook=HOOK)
        for name, phone in (("a", PHONE_A), ("b", PHONE_B)):
            httpx.post(f"{handle.url}/sim/instances/{name}/scan", json={"number": phone}, timeout=10)
        assert inproc.connection_state("a") == over_http.connection_state("a") == "open"
        sent = inproc.send_text("a", PHONE_B, "Bom dia!")
        assert sent.id and sent.remote_jid == "5511987654321@s.whatsapp.net" and sent.status == "PENDING"
        assert sorted(map(str, inproc.fetch_instances())) == sorted(map(str, over_http.fetch_instances()))
        with pytest.raises(Exception) as refused:  # a refusal is the same error either way
            inproc.send_text("nobody", PHONE_B, "Oi")
        with pytest.raises(type(refused.value)):
            over_http.send_text("nobody", PHONE_B, "Oi")


def test_a_simulator_that_does_not_answer_in_time_is_a_timeout_and_one_that_is_gone_cannot_be_reached(
    served: tuple[LoopOf, ServerHandle],
) -> None:
    app, handle = served
    inproc, _ = clients(app, handle.url)
    assert app.loop is not None
    app.loop.call_soon_threadsafe(time.sleep, 0.5)  # the simulator's loop is busy for half a second
    with pytest.raises(httpx.ReadTimeout):
        InProcessTransport(app).handle_request(
            httpx.Request("GET", f"{handle.url}/instance/fetchInstances", extensions={"timeout": {"read": 0.1}})
        )
    handle.stop()
    with inproc, pytest.raises(EvolutionServerError, match="cannot reach Evolution"):
        inproc.connection_state("a")
