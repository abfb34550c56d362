"""Bodies that are too big, not UTF-8, not JSON or absurdly nested get a 4xx with a reason, never a 500."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette

from mirage.settings import Settings
from mirage.web.app import create_app
from tests.webhooks.conftest import LiveServer, in_app_loop
from tests.webhooks.helpers import WEBHOOK, Seeded, envelope, events, incoming_text

Conn = psycopg.Connection[Any]
LIMIT = 1_048_576  # the default MIRAGE_WEBHOOK_MAX_BODY
CHUNK = 64 * 1024


def test_the_default_limit_is_one_mebibyte() -> None:
    assert Settings.from_env({}).webhook_max_body == LIMIT


def _over_limit_body() -> bytes:
    body = incoming_text("x" * (LIMIT + 10))
    assert len(body) > LIMIT
    return body


def test_a_body_over_the_limit_with_content_length_is_413(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    r = client.post(WEBHOOK, content=_over_limit_body(), headers=acme.headers())
    assert r.status_code == 413 and r.json() == {"ok": False, "reason": "body_too_large", "limit": LIMIT}
    assert events(db) == []


def test_a_chunked_body_over_the_limit_is_413_and_is_not_read_to_the_end(
    app: Starlette, db: Conn, acme: Seeded
) -> None:
    sent = 0
    total_chunks = 64  # 4 MiB offered

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(total_chunks):
            sent += 1
            yield b" " * CHUNK

    async def run(c: httpx.AsyncClient) -> httpx.Response:
        return await c.post(WEBHOOK, content=chunks(), headers=acme.headers())

    r = in_app_loop(app, run)
    assert r.status_code == 413 and r.json()["reason"] == "body_too_large"
    assert sent <= LIMIT // CHUNK + 2 < total_chunks  # reading stopped right after the limit
    assert events(db) == []


def test_a_chunked_body_under_the_limit_is_accepted(app: Starlette, db: Conn, acme: Seeded) -> None:
    body = incoming_text("chunked but small")

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 50):
            yield body[i : i + 50]

    async def run(c: httpx.AsyncClient) -> httpx.Response:
        return await c.post(WEBHOOK, content=chunks(), headers=acme.headers())

    assert in_app_loop(app, run).status_code == 200
    assert len(events(db)) == 1


def _raw_request(port: int, head: bytes, body_parts: Iterator[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head)
        try:
            for part in body_parts:
                s.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending: what we want
        data = b""
        try:  # read one response (the server may keep the connection open), not up to EOF
            while not _complete(data) and (chunk := s.recv(65536)):
                data += chunk
        except ConnectionResetError:
            pass
    return data


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    return len(body) >= length


def test_over_real_http_a_declared_length_over_the_limit_is_refused_before_the_body(
    live_server: LiveServer, db: Conn, acme: Seeded
) -> None:
    head = (
        f"POST {WEBHOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"x-webhook-secret: {acme.secret}\r\nContent-Length: {LIMIT * 8}\r\n\r\n"
    ).encode()
    reply = _raw_request(live_server.port, head, iter([]))  # not one byte of body sent
    assert reply.startswith(b"HTTP/1.1 413"), reply[:100]
    assert events(db) == []


def test_over_real_http_a_chunked_body_over_the_limit_is_413(live_server: LiveServer, db: Conn, acme: Seeded) -> None:
    head = (
        f"POST {WEBHOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"x-webhook-secret: {acme.secret}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
    reply = _raw_request(live_server.port, head, iter([chunk] * (LIMIT // CHUNK + 4)))
    assert reply.startswith(b"HTTP/1.1 413"), reply[:100]
    assert events(db) == []


def test_a_smaller_configured_limit_applies(database_url: str, db: Conn, acme: Seeded) -> None:
    from starlette.testclient import TestClient

    app = create_app(Settings.from_env({**os.environ, "MIRAGE_WEBHOOK_MAX_BODY": "2048"}))
    with TestClient(app) as c:
        assert c.post(WEBHOOK, content=incoming_text("y" * 3000), headers=acme.headers()).status_code == 413
        assert c.post(WEBHOOK, content=incoming_text("small"), headers=acme.headers()).status_code == 200


BAD_BODIES = [
    pytest.param(b"[" * 100_000, "too_deep", id="100k-open-brackets"),
    pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "too_deep", id="100k-nested-objects"),
    pytest.param(b"[" * 70 + b"]" * 70, "too_deep", id="70-levels"),
    pytest.param(
        b'{"event": "messages.upsert", "instance": "acme-support", "data": "\xff\xfe"}', "invalid_utf8", id="bad-utf8"
    ),
    pytest.param(b"\xc3\x28", "invalid_utf8", id="bad-utf8-sequence"),
    pytest.param(b'{"event": "messages.upsert",', "invalid_json", id="truncated-json"),
    pytest.param(b"", "invalid_json", id="empty"),
    pytest.param(b'{"event": NaN, "instance": "x"}', "invalid_json", id="nan"),
    pytest.param(b'{"event": "x", "instance": "x", "data": 1e999}', "invalid_json", id="infinite-number"),
    pytest.param(b'{"event": "x", "instance": "x", "data": ' + b"9" * 5000 + b"}", "invalid_json", id="huge-integer"),
    pytest.param(b'["messages.upsert"]', "not_an_object", id="array"),
    pytest.param(b'{"instance": "acme-support", "data": {}}', "bad_event", id="no-event"),
    pytest.param(b'{"event": 5, "instance": "acme-support"}', "bad_event", id="event-not-a-string"),
    pytest.param(b'{"event": "messages.upsert", "data": {}}', "bad_instance", id="no-instance"),
    pytest.param(b'{"event": "messages.upsert", "instance": ""}', "bad_instance", id="empty-instance"),
]


@pytest.mark.parametrize(("body", "reason"), BAD_BODIES)
def test_malformed_bodies_are_400_with_a_reason(
    client: httpx.Client, db: Conn, acme: Seeded, body: bytes, reason: str
) -> None:
    r = client.post(WEBHOOK, content=body, headers=acme.headers())
    assert r.status_code == 400, r.text
    assert r.json()["ok"] is False and r.json()["reason"] == reason
    assert events(db) == []


def test_a_deep_but_sane_body_is_accepted(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    nested: Any = "leaf"
    for _ in range(40):
        nested = {"n": nested}
    r = client.post(WEBHOOK, content=envelope("contacts.update", nested), headers=acme.headers())
    assert r.status_code == 200 and r.json()["status"] == "ignored"


@pytest.mark.parametrize(("method", "code"), [("GET", 405), ("PUT", 405)])
def test_other_methods_get_a_json_answer(client: httpx.Client, method: str, code: int) -> None:
    r = client.request(method, WEBHOOK)
    assert r.status_code == code and r.json() == {"ok": False, "reason": "method_not_allowed"}


def test_unknown_paths_get_a_json_404(client: httpx.Client) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["reason"] == "not_found"


@pytest.mark.parametrize("path", [WEBHOOK + "/messages-upsert/extra", WEBHOOK + "x", "/api/webhooks"])
def test_posts_beside_the_webhook_routes_get_a_json_404(client: httpx.Client, acme: Seeded, path: str) -> None:
    r = client.post(path, content=incoming_text("lost"), headers=acme.headers())
    assert r.status_code == 404 and r.json()["reason"] == "not_found"


def test_webhooks_are_served_under_a_root_path(app: Starlette, db: Conn, acme: Seeded) -> None:
    """Behind a proxy that mounts Mirage under a prefix, Starlette's router (not the shortcut) serves the route."""
    from starlette.testclient import TestClient

    with TestClient(app, base_url="http://mirage.test", root_path="/mirage") as c:
        r = c.post("/mirage" + WEBHOOK + "/messages-upsert", content=incoming_text("mounted"), headers=acme.headers())
    assert r.status_code == 200 and r.json()["status"] == "processed"
    assert len(events(db)) == 1


def test_a_request_id_is_echoed_and_generated_when_absent(client: httpx.Client, acme: Seeded) -> None:
    given = client.post(WEBHOOK, content=incoming_text("a"), headers={**acme.headers(), "x-request-id": "req-42.a"})
    assert given.headers["x-request-id"] == "req-42.a"
    made = client.post(WEBHOOK, content=incoming_text("b"), headers=acme.headers())
    bogus = client.post(WEBHOOK, content=incoming_text("c"), headers={**acme.headers(), "x-request-id": "a b\tc"})
    assert len(made.headers["x-request-id"]) == 16 and bogus.headers["x-request-id"] != "a b\tc"


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"ok": True}
    assert client.get("/readyz").json() == {"ok": True, "database": "ok"}


def test_json_bodies_come_back_small(client: httpx.Client, acme: Seeded) -> None:
    r = client.post(WEBHOOK, content=incoming_text("z"), headers=acme.headers())
    assert len(r.content) < 200 and json.loads(r.content)["ok"] is True
