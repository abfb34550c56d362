"""Only the instance's own Evolution gets in: secret header, JWT or HMAC; anything else is 401 and stores nothing."""

from __future__ import annotations

import base64
import json
import socket
import time
import warnings
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from starlette.applications import Starlette

from mirage.crypto import keyring
from tests.webhooks.conftest import LiveServer
from tests.webhooks.helpers import (
    SHARED,
    WEBHOOK,
    Seeded,
    envelope,
    events,
    hmac_hex,
    incoming_text,
    make_jwt,
    seed_instance,
)

Conn = psycopg.Connection[Any]
BODY = (SHARED / "messages.upsert.json").read_bytes()
JSON = {"content-type": "application/json"}


def _refused(r: httpx.Response, db: Conn) -> None:
    assert r.status_code == 401, r.text
    assert r.json() == {"ok": False, "reason": "unauthorized"}
    assert events(db) == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-credentials"),
        pytest.param({"x-webhook-secret": "not-the-secret"}, id="wrong-secret"),
        pytest.param({"x-webhook-secret": ""}, id="empty-secret"),
        pytest.param({"x-signature": "0" * 64}, id="wrong-hmac"),
        pytest.param({"authorization": "Bearer not.a.jwt"}, id="garbage-jwt"),
        pytest.param({"authorization": "Basic dXNlcjpwYXNz"}, id="basic-auth"),
    ],
)
def test_missing_or_wrong_credentials_are_refused_and_store_nothing(
    client: httpx.Client, db: Conn, acme: Seeded, headers: dict[str, str]
) -> None:
    _refused(client.post(WEBHOOK, content=BODY, headers={**JSON, **headers}), db)


@pytest.mark.parametrize("position", [0, -1], ids=["first-byte", "last-byte"])
def test_a_secret_differing_in_one_byte_is_refused(client: httpx.Client, db: Conn, acme: Seeded, position: int) -> None:
    wrong = bytearray(acme.secret.encode())
    wrong[position] ^= 0x01
    _refused(client.post(WEBHOOK, content=BODY, headers={**JSON, "x-webhook-secret": bytes(wrong).decode()}), db)


@pytest.mark.parametrize("header", ["x-webhook-secret", "x-signature", "authorization"])
def test_a_non_ascii_credential_header_is_refused_not_a_server_error(
    client: httpx.Client, db: Conn, acme: Seeded, header: str
) -> None:
    value = (acme.secret[:-1] + "ç").encode("utf-8") if header != "authorization" else "Bearer çãõ".encode()
    _refused(client.post(WEBHOOK, content=BODY, headers={**JSON, header: value}), db)  # type: ignore[dict-item]


def test_a_non_ascii_secret_header_over_real_http_is_refused(live_server: LiveServer, db: Conn, acme: Seeded) -> None:
    """The bytes reach uvicorn raw (latin-1 / UTF-8 obs-text), not through an HTTP client that would refuse them."""
    secret = acme.secret[:-1].encode() + "é".encode()
    head = (
        (
            f"POST {WEBHOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BODY)}\r\nConnection: close\r\n"
        ).encode()
        + b"x-webhook-secret: "
        + secret
        + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=5) as s:
        s.sendall(head + BODY)
        reply = b"".join(iter(lambda: s.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    assert events(db) == []


def test_the_secret_header_authenticates(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    r = client.post(WEBHOOK, content=BODY, headers=acme.headers())
    assert r.status_code == 200 and [e["signature"] for e in events(db)] == ["header"]


def test_a_valid_evolution_jwt_authenticates(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    token = make_jwt(acme.jwt_key)
    r = client.post(WEBHOOK, content=BODY, headers={**JSON, "authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert [e["signature"] for e in events(db)] == ["jwt"]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda key: make_jwt(key, iat=time.time() - 3600), id="expired"),
        pytest.param(lambda key: make_jwt(key, app="someone-else"), id="wrong-app"),
        pytest.param(lambda key: make_jwt(key, action="other"), id="wrong-action"),
        pytest.param(lambda key: make_jwt("another-key-" + "x" * 40), id="other-key"),
        pytest.param(lambda key: make_jwt(key, iat=time.time() + 3600), id="issued-in-the-future"),
        pytest.param(lambda key: _jwt_without_exp(key), id="no-exp"),
        pytest.param(lambda key: _jwt_alg_none(), id="alg-none"),
        pytest.param(lambda key: jwt.encode(_claims(), key, algorithm="HS512"), id="hs512"),
    ],
)
def test_an_invalid_or_expired_jwt_is_refused(client: httpx.Client, db: Conn, acme: Seeded, make: Any) -> None:
    token = make(acme.jwt_key)
    _refused(client.post(WEBHOOK, content=BODY, headers={**JSON, "authorization": f"Bearer {token}"}), db)


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {"iat": now, "exp": now + 600, "app": "evolution", "action": "webhook"}


def _jwt_without_exp(key: str) -> str:
    claims = _claims()
    del claims["exp"]
    return jwt.encode(claims, key, algorithm="HS256")


def _jwt_alg_none() -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(_claims())}."


def test_a_jwt_key_shorter_than_32_bytes_never_authenticates(client: httpx.Client, db: Conn) -> None:
    weak = seed_instance(db, jwt_key="short-key")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns when signing with it; Mirage refuses it outright
        token = make_jwt(weak.jwt_key)
    _refused(client.post(WEBHOOK, content=BODY, headers={**JSON, "authorization": f"Bearer {token}"}), db)


@pytest.mark.parametrize("prefix", ["", "sha256="])
def test_a_valid_hmac_of_the_raw_body_authenticates(client: httpx.Client, db: Conn, acme: Seeded, prefix: str) -> None:
    r = client.post(WEBHOOK, content=BODY, headers={**JSON, "x-signature": prefix + hmac_hex(BODY, acme.secret)})
    assert r.status_code == 200, r.text
    assert [e["signature"] for e in events(db)] == ["hmac"]


def test_an_hmac_of_another_body_is_refused(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    other = incoming_text("forged")
    _refused(client.post(WEBHOOK, content=other, headers={**JSON, "x-signature": hmac_hex(BODY, acme.secret)}), db)


def test_an_unknown_instance_is_refused_like_a_wrong_secret(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    body = envelope("messages.upsert", {"key": {"id": "X1"}}, instance="nobody-here")
    _refused(client.post(WEBHOOK, content=body, headers=acme.headers()), db)


def test_tenant_a_credentials_cannot_post_for_tenant_b(client: httpx.Client, db: Conn) -> None:
    a = seed_instance(db, "tenant-a", instance="a-main", number="+5511911110001")
    b = seed_instance(db, "tenant-b", instance="b-main", number="+5511922220002")
    body = incoming_text("para o B").replace(b'"acme-support"', b'"b-main"')
    for headers in (
        {"x-webhook-secret": a.secret},
        {"authorization": f"Bearer {make_jwt(a.jwt_key)}"},
        {"x-signature": hmac_hex(body, a.secret)},
    ):
        _refused(client.post(WEBHOOK, content=body, headers={**JSON, **headers}), db)
    assert client.post(WEBHOOK, content=body, headers=b.headers()).status_code == 200
    assert [e["tenant_id"] for e in events(db)] == [b.tenant_id]


def test_a_rotated_secret_is_accepted_at_once_despite_the_cache(
    app: Starlette, client: httpx.Client, db: Conn, acme: Seeded
) -> None:
    assert client.post(WEBHOOK, content=incoming_text("one"), headers=acme.headers()).status_code == 200
    new = "rotated-" + "s" * 30
    enc = keyring().encrypt(new, table="t_sessions", row_id=acme.session_id, field="webhook_secret")
    db.execute("update t_sessions set webhook_secret_enc = %s where id = %s", (enc, acme.session_id))
    db.commit()
    app.state.mirage.auth.refresh_after = 0.0  # the refresh is rate-limited to once a second
    r = client.post(WEBHOOK, content=incoming_text("two"), headers={**JSON, "x-webhook-secret": new})
    assert r.status_code == 200, r.text


def test_auth_material_is_cached_so_requests_do_not_reload_it(
    app: Starlette, client: httpx.Client, db: Conn, acme: Seeded
) -> None:
    loads: list[int] = []
    cache = app.state.mirage.auth
    original = cache._load

    async def counting() -> Any:
        loads.append(1)
        return await original()

    cache._load = counting
    for i in range(5):
        assert client.post(WEBHOOK, content=incoming_text(f"m{i}"), headers=acme.headers()).status_code == 200
    assert len(loads) == 1
    cache.invalidate()
    client.post(WEBHOOK, content=incoming_text("after"), headers=acme.headers())
    assert len(loads) == 2
