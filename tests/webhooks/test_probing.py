"""No probing and no pre-auth work (issue 10 item 6): the credential is checked before the body is parsed, an
unknown instance and a wrong secret take one path with no database query each, `Server-Timing` only when
configured, and a body that trickles in is cut off after the configured read timeout."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mirage.settings import Settings
from mirage.web import webhooks
from mirage.web.app import create_app
from tests.webhooks.conftest import LiveServer
from tests.webhooks.helpers import WEBHOOK, Seeded, envelope, events, incoming_text, make_jwt
from tests.webhooks.test_limits import _complete

Conn = psycopg.Connection[Any]
JSON = {"content-type": "application/json"}
# ~850 KB of nested arrays: what took ≈250 ms to parse before the 401
BIG = b'{"event": "messages.upsert", "instance": "acme-support", "data": [%s]}' % b",".join([b"[[[[0]]]]"] * 85_000)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many bodies the webhook endpoint parsed (their sizes)."""
    seen: list[int] = []
    original = webhooks.parse_envelope

    def counting(raw: bytes) -> Any:
        seen.append(len(raw))
        return original(raw)

    monkeypatch.setattr(webhooks, "parse_envelope", counting)
    return seen


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"x-webhook-secret": "not-the-secret"}, id="wrong-secret"),
        pytest.param({}, id="no-credentials"),
        pytest.param({"authorization": "Bearer not.a.jwt"}, id="garbage-jwt"),
        pytest.param({"x-signature": "0" * 64}, id="wrong-hmac"),
    ],
)
def test_an_unauthenticated_body_is_refused_before_it_is_parsed(
    client: httpx.Client, db: Conn, acme: Seeded, parses: list[int], headers: dict[str, str]
) -> None:
    assert len(BIG) > 800_000
    r = client.post(WEBHOOK, content=BIG, headers={**JSON, **headers})
    assert (r.status_code, r.json()) == (401, {"ok": False, "reason": "unauthorized"})
    assert parses == [] and events(db) == []


def test_a_jwt_or_hmac_is_checked_against_the_named_instance_before_parsing(
    client: httpx.Client, db: Conn, acme: Seeded, parses: list[int]
) -> None:
    forged = make_jwt("k" * 40)  # a well-formed Evolution JWT signed with another key
    r = client.post(WEBHOOK, content=BIG, headers={**JSON, "authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and parses == []
    ok = client.post(
        WEBHOOK, content=incoming_text("oi"), headers={**JSON, "authorization": f"Bearer {make_jwt(acme.jwt_key)}"}
    )
    assert ok.status_code == 200 and len(parses) == 1


def test_unknown_instances_and_wrong_secrets_share_one_path_and_no_query_each(
    app: Starlette, client: httpx.Client, db: Conn, acme: Seeded
) -> None:
    loads: list[float] = []
    state = app.state.mirage
    original = state.auth._load

    async def counting() -> Any:
        loads.append(time.monotonic())
        return await original()

    state.auth._load = counting
    assert client.post(WEBHOOK, content=incoming_text("warm"), headers=acme.headers()).status_code == 200

    def probe(i: int) -> set[tuple[int, bytes]]:
        unknown = envelope("messages.upsert", {"key": {"id": f"U{i}"}}, instance=f"nobody-{uuid.uuid4().hex[:8]}")
        out = set()
        for body, secret in ((unknown, acme.secret), (unknown, "wrong"), (incoming_text(f"w{i}"), "wrong")):
            r = client.post(WEBHOOK, content=body, headers={**JSON, "x-webhook-secret": secret})
            out.add((r.status_code, r.content))
        return out

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:  # 60 probes, 20 at a time: a miss waits for the next load
        answers = set().union(*pool.map(probe, range(20)))
    seconds = time.monotonic() - began
    assert answers == {(401, b'{"ok":false,"reason":"unauthorized"}')}
    # the first load, then at most one a second however many names are tried (the misses of a second share it)
    assert len(loads) <= 2 + seconds, (len(loads), seconds)
    assert len(loads) < 60 / 2


def test_server_timing_is_sent_only_when_configured(database_url: str, db: Conn, acme: Seeded) -> None:
    for value, expected in (("", False), ("true", True)):
        env = {k: v for k, v in os.environ.items() if k != "MIRAGE_SERVER_TIMING"}
        if value:
            env["MIRAGE_SERVER_TIMING"] = value
        with TestClient(create_app(Settings.from_env(env))) as c:
            for r in (c.get("/healthz"), c.post(WEBHOOK, content=b"{}", headers={**JSON, "x-webhook-secret": "x"})):
                assert ("server-timing" in r.headers) is expected, (value, r.headers)


def test_a_body_that_trickles_in_is_cut_off_after_the_read_timeout(database_url: str, db: Conn, acme: Seeded) -> None:
    app = create_app(Settings.from_env({**os.environ, "MIRAGE_WEBHOOK_BODY_TIMEOUT": "0.5"}))
    body = incoming_text("devagar")
    head = (
        f"POST {WEBHOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"x-webhook-secret: {acme.secret}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with LiveServer(app) as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        started = time.monotonic()
        s.sendall(head + body[:10])  # and then nothing more
        reply = b""
        while not _complete(reply) and (chunk := s.recv(65536)):
            reply += chunk
        took = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert json.loads(reply.partition(b"\r\n\r\n")[2]) == {"ok": False, "reason": "body_timeout"}
    assert took < 4, took
    assert events(db) == []


def test_while_some_secrets_cannot_be_decrypted_an_unmatched_request_is_retryable(
    database_url: str, db: Conn, acme: Seeded
) -> None:
    from cryptography.fernet import Fernet

    other_keys = Fernet.generate_key().decode()  # not the key acme's secrets were encrypted with
    with TestClient(create_app(Settings.from_env({**os.environ, "MIRAGE_SECRET_KEYS": other_keys}))) as c:
        r = c.post(WEBHOOK, content=incoming_text("oi"), headers=acme.headers())
        assert (r.status_code, r.json()["reason"]) == (503, "secrets_unavailable")  # Evolution retries a 503
        assert c.post(WEBHOOK, content=incoming_text("oi"), headers=JSON).status_code == 401  # no credential at all
    assert events(db) == []
