"""The simulator's webhook POSTs without httpx's client: the same bytes as httpx.AsyncClient.post, kept-alive
connections, and httpx's error names. Real: raw TCP servers on loopback that record what arrives."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from mirage.integrations.evolution_sim import wire
from mirage.integrations.evolution_sim.config import SimConfig
from mirage.integrations.evolution_sim.webhooks import WebhookDispatcher, request_headers
from mirage.integrations.evolution_sim.world import SimWorld

HEADER_CASES = [
    {},
    {"jwt_key": "k" * 16, "x-webhook-secret": "s"},
    {"X-Tenant": "t", "User-Agent": "me", "Accept": "text/plain"},
    {"Host": "elsewhere.example", "accept-encoding": "identity", "connection": "close"},
    {"content-length": "3"},
    {"X-Spaced": " both sides "},
]
URLS = ["http://127.0.0.1:8080/hook/x?a=b c", "https://example.com/", "http://[::1]:80/a", "http://exämple.com:8443/x"]


@pytest.mark.parametrize("headers", HEADER_CASES)
@pytest.mark.parametrize("url", URLS)
def test_wire_headers_are_the_ones_httpx_builds_in_its_order(url: str, headers: dict[str, str]) -> None:
    given = request_headers(headers)
    built = httpx.AsyncClient().build_request("POST", url, content=b"{}!", headers=given)
    assert wire.wire_headers(wire.Target(url).netloc, given, 3) == built.headers.raw


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return head + await reader.readexactly(length)


def test_a_delivery_puts_the_same_bytes_on_the_wire_as_httpx() -> None:
    async def main() -> list[bytes]:
        seen: list[bytes] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(await _read_request(reader))
            writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server, url = await _serve(handler)
        headers = request_headers({"jwt_key": "k" * 16, "x-webhook-secret": "s", "Accept": "*/*"})
        body = '{"event":"messages.upsert","text":"olá"}'.encode()
        async with httpx.AsyncClient(timeout=5, follow_redirects=False) as client:
            assert (await client.post(url + "/hook/messages-upsert", content=body, headers=headers)).status_code == 201
        connections = wire.Connections(4, 5.0)
        assert await connections.post(url + "/hook/messages-upsert", body, headers, 5.0) == 201
        await connections.aclose()
        server.close()
        await server.wait_closed()
        return seen

    via_httpx, via_wire = asyncio.run(main())
    assert via_wire == via_httpx


def test_deliveries_reuse_one_kept_alive_connection_and_survive_the_server_closing_it() -> None:
    async def main() -> tuple[list[int], int]:
        opened: list[int] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            opened.append(1)
            served = 0
            while served < 3:  # the server closes each connection after three requests
                try:
                    await _read_request(reader)
                except asyncio.IncompleteReadError:
                    break
                served += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server, url = await _serve(handler)
        connections = wire.Connections(4, 5.0)
        statuses = []
        for _ in range(7):
            statuses.append(await connections.post(url + "/hook", b"{}", {}, 5.0))
            await asyncio.sleep(0.02)  # the close reaches the client before the next request
        await connections.aclose()
        await asyncio.sleep(0.05)  # the server sees the last connection end
        server.close()
        await server.wait_closed()
        return statuses, len(opened)

    statuses, connections = asyncio.run(main())
    assert statuses == [200] * 7 and connections == 3


def test_a_refused_connection_is_recorded_under_httpx_error_name_and_retried() -> None:
    async def main() -> list[tuple[int, int | None, str | None, bool]]:
        server, url = await _serve(lambda r, w: asyncio.sleep(0))
        server.close()
        await server.wait_closed()  # nothing listens there any more
        config = SimConfig(time_factor=0.001, webhook_max_attempts=3)
        world = SimWorld(config)
        dispatcher = world.webhooks
        inst = world.create(
            "w1",
            token=None,
            integration="WHATSAPP-BAILEYS",
            settings={},
            webhook={"url": url},
            number=None,
            qrcode=False,
        )
        await dispatcher.wait(dispatcher.deliveries, timeout=10)
        await dispatcher.stop()
        assert inst.webhook is not None and isinstance(dispatcher, WebhookDispatcher)
        return [(d.attempts, d.status, d.error, d.ok) for d in dispatcher.deliveries]

    assert asyncio.run(main()) == [(3, None, "ConnectError", False)]
