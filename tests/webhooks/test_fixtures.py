"""Every webhook body in the shared fixtures (and our own LID / group / reply / delete / refused / QR-limit
variants) is accepted, stored once under its event type, and lands where its event type says."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from mirage.crypto import keyring
from mirage.integrations.evolution.envelope import REDACTED
from tests.webhooks.helpers import (
    CONTACT_NUMBER,
    LOCAL,
    SHARED,
    WEBHOOK,
    Seeded,
    events,
    fixture_files,
    messages,
    one,
    seed_contact,
)

Conn = psycopg.Connection[Any]
Check = Callable[[Conn, Seeded, dict[str, Any]], None]


def _message(conn: Conn, wa_msg_id: str) -> dict[str, Any]:
    return one(conn, "select * from t_messages where wa_msg_id = %s", wa_msg_id)


def _number(conn: Conn, seeded: Seeded) -> dict[str, Any]:
    return one(conn, "select * from t_numbers where id = %s", seeded.number_id)


def _session(conn: Conn, seeded: Seeded) -> dict[str, Any]:
    return one(conn, "select * from t_sessions where id = %s", seeded.session_id)


def incoming_text(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
    m = _message(conn, body["data"]["key"]["id"])
    assert (m["direction"], m["status"], m["body"]) == ("in", "received", "Olá! Vocês abrem no sábado?")
    assert m["to_number_id"] == seeded.number_id and m["from_number_id"] is None
    assert m["contact_id"] is not None and m["from_jid"] == "5521998765432@s.whatsapp.net"
    assert m["wa_ts"].timestamp() == body["data"]["messageTimestamp"]
    assert m["meta"]["push_name"] == "Maria Souza"


def sent_from_phone(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
    m = _message(conn, body["data"]["key"]["id"])
    assert (m["direction"], m["status"], m["body"]) == ("out", "sent", "Respondi pelo celular 👍")
    assert m["from_number_id"] == seeded.number_id and m["contact_id"] is not None
    assert m["sent_at"] is not None


def sent_by_api(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
    m = _message(conn, body["data"]["key"]["id"])
    assert (m["direction"], m["status"], m["message_type"]) == ("out", "sending", "conversation")
    assert m["body"] == "Temos horário às 10h ou às 15h." and m["to_jid"] == "5521998765432@s.whatsapp.net"


def receipt(status: str, stamp: str) -> Check:
    def check(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
        m = _message(conn, body["data"]["keyId"])  # arrived before its message: a placeholder holds the receipt
        assert (m["direction"], m["status"], m["message_type"]) == ("out", status, "unknown")
        assert m[stamp] is not None and m["meta"] == {"placeholder": True}

    return check


def number_status(status: str, reason: str | None, state: str) -> Check:
    def check(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
        n, s = _number(conn, seeded), _session(conn, seeded)
        assert (n["status"], n["status_reason"], s["state"]) == (status, reason, state)
        assert s["last_seen"] is not None
        assert (n["connected_at"] is not None) == (status == "open")

    return check


def qr(pairing: str | None) -> Check:
    def check(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
        s, ring = _session(conn, seeded), keyring()
        where = {"table": "t_sessions", "row_id": seeded.session_id}
        assert ring.decrypt(s["last_qr_enc"], **where, field="last_qr") == body["data"]["qrcode"]["code"]
        code = s["pairing_code_enc"] and ring.decrypt(s["pairing_code_enc"], **where, field="pairing_code")
        assert (code or None, s["qr_count"], _number(conn, seeded)["status"]) == (pairing, 1, "qr")

    return check


def qr_limit(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
    s, n = _session(conn, seeded), _number(conn, seeded)
    assert (s["state"], s["last_qr_enc"], s["qr_count"]) == ("refused", None, 0)
    assert (n["status"], n["status_reason"]) == ("refused", "qr_limit")


def instance_created(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
    assert _session(conn, seeded)["instance_id"] == body["data"]["instanceId"]


def lifecycle(status: str) -> Check:
    def check(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
        assert (_number(conn, seeded)["status"], _session(conn, seeded)["state"]) == (status, "close")

    return check


def seen(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
    assert _session(conn, seeded)["last_seen"] is not None and not messages(conn)


def lid_with_phone(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
    m = _message(conn, body["data"]["key"]["id"])
    contact = one(conn, "select * from t_contacts where wa_number = %s", CONTACT_NUMBER)
    assert m["contact_id"] == contact["id"] and contact["lid"] == "176526487654321@lid"
    assert m["from_jid"] == "5521998765432@s.whatsapp.net" and m["meta"]["peer_lid"] == "176526487654321@lid"


def lid_only(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
    # the contact's LID was learnt earlier (seeded here): a message carrying only the LID still finds them
    m = _message(conn, body["data"]["key"]["id"])
    contact = one(conn, "select * from t_contacts where wa_number = %s", CONTACT_NUMBER)
    assert m["contact_id"] == contact["id"] and m["from_jid"] == "176526487654321@lid"


def ignored(reason: str) -> Check:
    def check(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
        (event,) = events(conn)
        assert (event["status"], event["ignored_reason"]) == ("ignored", reason)
        assert messages(conn) == []

    return check


def reply(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
    m = _message(conn, body["data"]["key"]["id"])
    assert (m["body"], m["quoted_wa_msg_id"]) == ("Pode ser às 10h!", "3EB0C431C26A1916E1A0A6")


def extended_text(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
    m = _message(conn, body["data"]["key"]["id"])
    assert (m["body"], m["message_type"]) == ("Olha esse link https://example.com", "extendedTextMessage")
    assert m["quoted_wa_msg_id"] == "3EB0C431C26A1916E1A0A6" and m["wa_ts"] is not None


def image(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
    m = _message(conn, body["data"]["key"]["id"])
    assert (m["message_type"], m["body"]) == ("imageMessage", "Foto da fachada")


def deleted(conn: Conn, seeded: Seeded, body: dict[str, Any]) -> None:
    m = _message(conn, body["data"]["id"])  # seeded by posting the original first
    assert m["meta"]["deleted"] is True and m["body"] == "Olá! Vocês abrem no sábado?"


EXPECT: dict[str, tuple[str, Check]] = {
    # shared fixtures (tests/fixtures/evolution/)
    "connection.update.close.json": ("processed", number_status("close", "401", "close")),
    "connection.update.connecting.json": ("processed", number_status("connecting", "200", "connecting")),
    "connection.update.open.json": ("processed", number_status("open", None, "open")),
    "instance.create.json": ("processed", instance_created),
    "logout.instance.json": ("processed", lifecycle("logged_out")),
    "messages.update.json": ("processed", receipt("delivered", "delivered_at")),
    "messages.update.read.json": ("processed", receipt("read", "read_at")),
    "messages.upsert.fromme-phone.json": ("processed", sent_from_phone),
    "messages.upsert.json": ("processed", incoming_text),
    "qrcode.updated.json": ("processed", qr(None)),
    "qrcode.updated.pairing.json": ("processed", qr("WZYEH1YY")),
    "remove.instance.json": ("processed", lifecycle("removed")),
    "send.message.json": ("processed", sent_by_api),
    "status.instance.json": ("processed", seen),
    # our variants (tests/webhooks/fixtures/)
    "connection.update.refused.json": ("processed", number_status("refused", "428", "refused")),
    "messages.delete.json": ("processed", deleted),
    "messages.upsert.extended-text.json": ("processed", extended_text),
    "messages.upsert.group.json": ("ignored", ignored("group")),
    "messages.upsert.image.json": ("processed", image),
    "messages.upsert.lid-only.json": ("processed", lid_only),
    "messages.upsert.lid.json": ("processed", lid_with_phone),
    "messages.upsert.reply.json": ("processed", reply),
    "messages.upsert.status-broadcast.json": ("ignored", ignored("status_broadcast")),
    "qrcode.updated.limit.json": ("processed", qr_limit),
}
FILES = fixture_files() + sorted(LOCAL.glob("*.json"))


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in FILES) == sorted(EXPECT), "add an expectation for each new fixture"
    assert len(fixture_files()) >= 14


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_fixture_is_accepted_and_lands_as_its_event_type(
    path: Path, client: httpx.Client, db: Conn, acme: Seeded
) -> None:
    lid = "176526487654321@lid" if "lid-only" in path.name else None
    seed_contact(db, acme.tenant_id, CONTACT_NUMBER, "Maria Souza", lid=lid)
    if path.name == "messages.delete.json":
        original = (SHARED / "messages.upsert.json").read_bytes()
        assert client.post(WEBHOOK, content=original, headers=acme.headers()).status_code == 200
    raw = path.read_bytes()
    body = json.loads(raw)
    status, check = EXPECT[path.name]

    r = client.post(WEBHOOK, content=raw, headers=acme.headers())

    assert r.status_code == 200, r.text
    assert r.json()["status"] == status and r.json()["event"] == body["event"]
    (event,) = [e for e in events(db) if e["id"] == uuid.UUID(r.json()["id"])]
    assert (event["event_type"], event["instance_name"], event["signature"]) == (body["event"], acme.instance, "header")
    assert (event["tenant_id"], event["session_id"], event["status"]) == (acme.tenant_id, acme.session_id, status)
    assert event["payload"]["apikey"] == REDACTED and event["payload"]["event"] == body["event"]
    check(db, acme, body)
