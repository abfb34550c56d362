"""End to end over real HTTP: the Evolution simulator delivers its webhooks to Mirage's app served by uvicorn."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from mirage.crypto import keyring
from mirage.integrations.evolution.models import WebhookConfig
from mirage.integrations.evolution_sim import ChaosConfig, SimConfig, SimHandle, run_in_thread
from tests.webhooks.conftest import LiveServer
from tests.webhooks.helpers import WEBHOOK, events, seed_contact, seed_instance

Conn = psycopg.Connection[Any]
PHONE, HUMAN = "+5511912345678", "+5521998765432"
SECRET, JWT_KEY = "e2e-secret-" + "s" * 30, "e2e-jwt-key-" + "k" * 30


def wait_until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout} s")
        time.sleep(0.05)
    return value


def fetch(db: Conn, sql: str, *args: Any) -> list[dict[str, Any]]:
    db.commit()
    return db.execute(sql, args).fetchall()


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    handle = run_in_thread(
        SimConfig(time_factor=0.01, seed=3, chaos=ChaosConfig(duplicate_rate=0.3, reorder_rate=0.3, reorder_max_s=0.2))
    )
    try:
        yield handle
    finally:
        handle.stop()


# `db` comes first in every test here: fixtures are torn down in reverse, so its cleanup runs after the simulator
# and the server have stopped, and no late delivery can land between its deletes.


def test_the_simulator_lifecycle_lands_in_mirage(db: Conn, live_server: LiveServer, sim: SimHandle) -> None:
    """QR -> scan -> open -> a person writes -> Mirage's number answers -> receipts, with duplicates and reordering."""
    acme = seed_instance(db, instance="acme-e2e", number=PHONE, secret=SECRET, jwt_key=JWT_KEY)
    contact = seed_contact(db, acme.tenant_id, HUMAN, "Maria")
    hook = WebhookConfig(url=live_server.url + WEBHOOK, secret=SECRET, jwt_key=JWT_KEY)
    with sim.client() as client:
        token = client.create_instance("acme-e2e", webhook=hook).token
    ring, where = keyring(), {"table": "t_sessions", "row_id": acme.session_id}

    qr = wait_until(lambda: fetch(db, "select last_qr_enc from t_sessions where last_qr_enc is not null"))
    assert ring.decrypt(qr[0]["last_qr_enc"], **where, field="last_qr").startswith("2@")
    sim.scan("acme-e2e", PHONE)
    wait_until(lambda: fetch(db, "select 1 from t_numbers where status = 'open' and connected_at is not null"))

    sim.say(HUMAN, "acme-e2e", "Oi! Tudo bem por aí?")
    (incoming,) = wait_until(lambda: fetch(db, "select * from t_messages where direction = 'in'"))
    assert (incoming["body"], incoming["contact_id"], incoming["to_number_id"]) == (
        "Oi! Tudo bem por aí?",
        contact,
        acme.number_id,
    )
    with sim.client(api_key=token) as client:
        sent = client.send_text("acme-e2e", HUMAN, "Tudo ótimo, e você?")
    out = wait_until(lambda: fetch(db, "select * from t_messages where wa_msg_id = %s and status = 'read'", sent.id))
    assert out[0]["body"] == "Tudo ótimo, e você?" and out[0]["delivered_at"] is not None

    sim_deliveries = wait_until(lambda: [d for d in sim.deliveries("acme-e2e") if d["done"]] or None)
    assert all(d["ok"] and d["status"] == 200 for d in sim_deliveries), sim_deliveries
    stored = events(db)
    assert len({e["idem_key"] for e in stored}) == len(stored)  # duplicates were delivered, stored once
    assert {e["signature"] for e in stored} == {"header"}


def test_jwt_only_webhooks_from_the_simulator_authenticate(db: Conn, live_server: LiveServer, sim: SimHandle) -> None:
    seed_instance(db, instance="jwt-only", number=PHONE, secret=SECRET, jwt_key=JWT_KEY)
    body = {
        "instanceName": "jwt-only",
        "integration": "WHATSAPP-BAILEYS",
        "qrcode": True,
        "webhook": {
            "url": live_server.url + WEBHOOK,
            "byEvents": True,  # also exercises the /{event} suffix routes
            "base64": False,
            "headers": {"jwt_key": JWT_KEY},
            "events": ["QRCODE_UPDATED", "CONNECTION_UPDATE"],
        },
    }
    r = httpx.post(sim.url + "/instance/create", json=body, headers={"apikey": sim.api_key}, timeout=30)
    assert r.status_code == 201, r.text
    sim.scan("jwt-only", PHONE)
    stored = wait_until(lambda: [e for e in events(db) if e["event_type"] == "connection.update"])
    assert {e["signature"] for e in events(db)} == {"jwt"} and "_mirage" not in stored[0]["payload"]


def test_a_wrong_secret_in_evolution_is_refused_and_evolution_gives_up(
    db: Conn, live_server: LiveServer, sim: SimHandle
) -> None:
    seed_instance(db, instance="wrong", number=PHONE, secret=SECRET, jwt_key=JWT_KEY)
    hook = WebhookConfig(url=live_server.url + WEBHOOK, secret="not-" + SECRET, jwt_key="not-" + JWT_KEY)
    with sim.client() as client:
        client.create_instance("wrong", webhook=hook)
    done = wait_until(lambda: [d for d in sim.deliveries("wrong") if d["done"]] or None)
    assert {(d["status"], d["attempts"]) for d in done} == {(401, 1)}  # 401 is not retried (contract §6.1)
    assert events(db) == []
