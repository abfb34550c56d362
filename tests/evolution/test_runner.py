"""The in-thread HTTP servers (simulators, webhook receivers) answer keep-alive requests without Nagle's delay."""

from __future__ import annotations

import socket

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from mirage.integrations.evolution_sim import serve_in_thread


async def _hello(request: object) -> JSONResponse:
    return JSONResponse({"ok": True})


def test_an_in_thread_server_turns_nagle_off_for_its_connections() -> None:
    """asyncio sets TCP_NODELAY only on sockets whose protocol says TCP; a socket made with protocol 0 left Nagle on,
    and every keep-alive answer (headers, then body) waited ~40 ms for the client's delayed ACK."""
    with serve_in_thread(Starlette(routes=[Route("/", _hello)])) as server:
        listening = server._server.servers[0].sockets[0]
        assert listening.proto == socket.IPPROTO_TCP
        assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        with socket.create_connection(listening.getsockname()[:2]) as client:
            client.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
