"""With DEBUG logging on everywhere, no log line carries a credential, and every line of a request its id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from mirage.logs import configure_logging
from tests.webhooks.conftest import SECRET_KEYS
from tests.webhooks.helpers import (
    SHARED,
    TOKEN,
    WEBHOOK,
    Seeded,
    envelope,
    hmac_hex,
    incoming_text,
    make_jwt,
)

Conn = psycopg.Connection[Any]
NOISY = ("httpx", "httpcore", "psycopg", "psycopg.pool", "rq.worker", "asyncio", "starlette", "uvicorn")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    configure_logging("DEBUG", "json", buf)
    levels = {name: logging.getLogger(name).level for name in NOISY}
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield buf
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_no_log_line_contains_a_token_secret_or_key(
    client: httpx.Client, db: Conn, acme: Seeded, log_lines: io.StringIO
) -> None:
    body = (SHARED / "messages.upsert.json").read_bytes()
    jwt_token = make_jwt(acme.jwt_key)
    signature = hmac_hex(body, acme.secret)
    qr = (SHARED / "qrcode.updated.pairing.json").read_bytes()
    qr_doc = json.loads(qr)
    requests = [
        (body, acme.headers()),
        (incoming_text("by jwt"), {"authorization": f"Bearer {jwt_token}"}),
        (body, {"x-signature": signature}),
        (qr, acme.headers()),
        (incoming_text("wrong secret"), {"x-webhook-secret": acme.secret + "x"}),  # a near-miss secret
        (incoming_text("expired"), {"authorization": f"Bearer {make_jwt(acme.jwt_key, iat=1)}"}),
        (b'{"event": "x"', acme.headers()),
        (envelope("send.message", {"key": "not-a-dict"}), acme.headers()),
    ]
    for content, headers in requests:
        client.post(WEBHOOK, content=content, headers={"content-type": "application/json", **headers})

    text = log_lines.getvalue()
    assert "webhook unauthorised" in text and "webhook processed" in text  # the requests were logged
    forbidden = {
        "instance token (apikey)": TOKEN,
        "webhook secret": acme.secret,
        "jwt key": acme.jwt_key,
        "jwt": jwt_token,
        "jwt signature part": jwt_token.rsplit(".", 1)[1],
        "hmac signature": signature,
        "qr code": qr_doc["data"]["qrcode"]["code"],
        "pairing code": qr_doc["data"]["qrcode"]["pairingCode"],
        **{f"fernet key {i}": key for i, key in enumerate(SECRET_KEYS.split(","))},
    }
    leaked = [name for name, value in forbidden.items() if value in text]
    assert leaked == []


def test_every_line_of_a_request_carries_its_request_id(
    client: httpx.Client, db: Conn, acme: Seeded, log_lines: io.StringIO
) -> None:
    for i, headers in enumerate([acme.headers(), {"x-webhook-secret": "nope"}]):
        r = client.post(WEBHOOK, content=incoming_text(f"m{i}"), headers={**headers, "x-request-id": f"rid-{i}"})
        assert r.headers["x-request-id"] == f"rid-{i}"
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    ours = [line for line in lines if line["logger"].startswith("mirage.")]
    assert {line["correlation_id"] for line in ours} == {"rid-0", "rid-1"}
    (stored,) = [line for line in ours if line["msg"] == "webhook processed"]
    assert stored["correlation_id"] == "rid-0" and stored["tenant"] == str(acme.tenant_id)
    (refused,) = [line for line in ours if line["msg"] == "webhook unauthorised"]
    assert refused["correlation_id"] == "rid-1" and refused["why"] == "no_session_matches"
