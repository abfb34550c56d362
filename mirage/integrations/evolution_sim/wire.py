"""A webhook POST as httpx.AsyncClient.post sends it, on kept-alive httpcore connections without the client (ADR 0065).

httpx's client and httpcore's pool cost the busy simulator more CPU than the rest of a message: the pool scans
every connection it holds for every request, asking each idle socket whether it is readable. Here each origin
keeps a stack of idle connections and a request takes the newest one, checking only that one (and the oldest, so
connections the server closed are let go). The bytes on the wire are the client's: same request line, headers
in the same order (`wire_headers`), same body; errors are httpcore's, which httpx re-raises under the same names.
"""

from __future__ import annotations

import asyncio
import ssl

import httpcore
import httpx

_DEFAULTS: list[tuple[bytes, bytes]] = []

# What httpx maps to its own HTTPError subclasses of the same name.
ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
)


def _client_defaults() -> list[tuple[bytes, bytes]]:
    """The headers httpx.AsyncClient puts on every request (Accept, Accept-Encoding, Connection, User-Agent)."""
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(204))).headers.raw


def wire_headers(netloc: bytes, headers: dict[str, str], length: int) -> list[tuple[bytes, bytes]]:
    """The header lines httpx.AsyncClient.post(url, content=<length bytes>, headers=headers) sends, in its order:
    Host first, the client's defaults not overridden (in any case), the given ones as given, then Content-Length."""
    if not _DEFAULTS:
        _DEFAULTS.extend(_client_defaults())
    given = [(k.encode("ascii"), v.encode("ascii")) for k, v in headers.items()]
    names = {k.lower() for k, _ in given}
    raw = [(k, v) for k, v in _DEFAULTS if k.lower() not in names] + given
    if b"content-length" not in names:
        raw.append((b"Content-Length", str(length).encode()))
    if b"host" not in names:
        raw.insert(0, (b"Host", netloc))
    return raw


class Target:
    """A webhook URL parsed once, as httpx parses it: where to connect, the request target and the Host header."""

    __slots__ = ("key", "netloc", "origin", "url")

    def __init__(self, url: str) -> None:
        u = httpx.URL(url)
        self.url = httpcore.URL(scheme=u.raw_scheme, host=u.raw_host, port=u.port, target=u.raw_path)
        self.origin = self.url.origin
        self.key = (u.raw_scheme, u.raw_host, self.origin.port)
        self.netloc = u.netloc


class Connections:
    """Up to `limit` HTTP/1.1 connections at once, kept alive per origin for `keepalive_expiry` seconds (httpx's
    default Limits: 5 s) once idle, with no cap on how many stay idle (like `max_keepalive_connections=None`)."""

    def __init__(self, limit: int, keepalive_expiry: float, ssl_context: ssl.SSLContext | None = None) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._expiry = keepalive_expiry
        self._ssl = ssl_context
        self._idle: dict[tuple[bytes, bytes, int], list[httpcore.AsyncHTTPConnection]] = {}
        self._busy: set[httpcore.AsyncHTTPConnection] = set()
        self._targets: dict[str, Target] = {}

    def target(self, url: str) -> Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= 10_000:
                self._targets.clear()
            target = self._targets[url] = Target(url)
        return target

    async def post(self, url: str, content: bytes, headers: dict[str, str], timeout: float) -> int:
        """POST `content` to `url`; the response's status (its body is read and dropped). `timeout` bounds the wait
        for a free connection, the connect, and each read and write, as httpx's `timeout=` does."""
        target = self.target(url)
        raw = wire_headers(target.netloc, headers, len(content))
        if self._ssl is None and target.url.scheme == b"https":
            self._ssl = httpx.create_ssl_context()
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpcore.PoolTimeout("no webhook connection was free in time") from None
        try:
            conn = await self._checkout(target)
            self._busy.add(conn)
            try:
                request = httpcore.Request(
                    "POST",
                    target.url,
                    headers=raw,
                    content=content,
                    extensions={"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}},
                )
                response = await conn.handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                return response.status
            finally:
                self._busy.discard(conn)
                if conn.is_idle() and not conn.is_closed():
                    self._idle.setdefault(target.key, []).append(conn)
                elif not conn.is_closed():
                    await conn.aclose()
        finally:
            self._slots.release()

    async def _checkout(self, target: Target) -> httpcore.AsyncHTTPConnection:
        """The newest idle connection to the target's origin that is still usable, or a new one."""
        idle = self._idle.get(target.key)
        while idle:
            # the oldest first: let go of one the server closed or that outlived keep-alive
            if idle[0].has_expired():
                await idle.pop(0).aclose()
                continue
            conn = idle.pop()
            if not conn.has_expired():
                return conn
            await conn.aclose()
        return httpcore.AsyncHTTPConnection(origin=target.origin, ssl_context=self._ssl, keepalive_expiry=self._expiry)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                await conn.aclose()
        for conn in list(self._busy):
            await conn.aclose()
        self._idle.clear()
        self._busy.clear()
