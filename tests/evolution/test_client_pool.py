"""The process's pool of kept-alive Evolution connections (`EvolutionClient.pooled`, ADR 0057) against the
simulator over real HTTP: one shared client per server, safe across threads, new in a forked child, with no
credential of its own and idle connections dropped before a server would close them."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from mirage.integrations.evolution import client as evolution_client
from mirage.integrations.evolution.client import KEEPALIVE_EXPIRY_S, NO_RETRY, EvolutionClient, pooled_http
from mirage.integrations.evolution_sim import SimHandle
from tests.evolution.test_client import PHONE_A, PHONE_B, WEBHOOK

FORK = multiprocessing.get_context("fork")


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    evolution_client.close_pool()
    yield
    evolution_client.close_pool()


def test_threads_share_one_client_per_server_and_their_sends_all_go_out(sim: SimHandle) -> None:
    with sim.client() as admin:
        token = admin.create_instance("acme-sales", webhook=WEBHOOK).token
    sim.scan("acme-sales", PHONE_A)
    barrier = threading.Barrier(8)
    shared: list[httpx.Client] = []
    ids: list[str] = []

    def send(i: int) -> None:
        barrier.wait()
        shared.append(pooled_http(sim.url + "/"))  # the same server, however its URL is spelled
        sent = EvolutionClient.pooled(sim.url, None, retry=NO_RETRY).send_text(
            "acme-sales", PHONE_B, f"oi {i}", token=token
        )
        ids.append(sent.id)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in shared}) == 1 and len(set(ids)) == 8


def test_closing_a_pooled_client_keeps_the_shared_connections(sim: SimHandle) -> None:
    EvolutionClient.pooled(sim.url, None).close()
    assert not pooled_http(sim.url).is_closed
    assert EvolutionClient.pooled(sim.url, sim.api_key).welcome()["version"]


def test_the_pool_holds_no_credential_and_the_key_goes_with_each_request(sim: SimHandle) -> None:
    EvolutionClient.pooled(sim.url, sim.api_key).fetch_instances()  # the global key, per request
    assert "apikey" not in pooled_http(sim.url).headers
    with pytest.raises(Exception, match="401"):
        EvolutionClient.pooled(sim.url, None, retry=NO_RETRY).fetch_instances()


def test_idle_connections_are_dropped_before_evolution_or_uvicorn_would_close_them() -> None:
    # Node's http server (Evolution) and uvicorn both close an idle keep-alive connection after 5 s: a request
    # sent on one at that instant would fail after it left, and a send would be `unknown`.
    uvicorn_idle_s = uvicorn.Config(app="mirage.web.app:create_app").timeout_keep_alive
    assert KEEPALIVE_EXPIRY_S < 5 and uvicorn_idle_s > KEEPALIVE_EXPIRY_S
    assert pooled_http("http://127.0.0.1:9")._transport._pool._keepalive_expiry == KEEPALIVE_EXPIRY_S  # type: ignore[attr-defined]


def _child_pool(parent_id: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put((len(evolution_client._pool), id(pooled_http("http://127.0.0.1:9")) != parent_id))


def test_a_forked_child_starts_with_a_pool_of_its_own(sim: SimHandle) -> None:
    parent = pooled_http("http://127.0.0.1:9")
    out = FORK.Queue()
    child = FORK.Process(target=_child_pool, args=(id(parent), out))
    child.start()
    assert out.get(timeout=30) == (0, True)
    child.join(10)
    assert pooled_http("http://127.0.0.1:9") is parent
