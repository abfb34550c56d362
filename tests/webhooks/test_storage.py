"""Storage is idempotent, verbatim where it should be, sanitised where Postgres needs it, and order-proof."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette

from tests.webhooks.conftest import post_many
from tests.webhooks.helpers import (
    CONTACT_NUMBER,
    SHARED,
    WEBHOOK,
    Seeded,
    envelope,
    events,
    incoming_text,
    messages,
    one,
    seed_contact,
    seed_instance,
    seed_number,
)

Conn = psycopg.Connection[Any]


def _post(client: httpx.Client, acme: Seeded, body: bytes, path: str = WEBHOOK) -> dict[str, Any]:
    r = client.post(path, content=body, headers=acme.headers())
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _receipt(msg_id: str, status: str, from_me: bool = True, date_time: str = "2025-10-21T14:41:44.120Z") -> bytes:
    data = {"keyId": msg_id, "remoteJid": "5521998765432@s.whatsapp.net", "fromMe": from_me, "status": status}
    return envelope("messages.update", data, date_time=date_time)


def test_five_concurrent_duplicates_store_one_row(app: Starlette, db: Conn, acme: Seeded) -> None:
    body = (SHARED / "messages.upsert.json").read_bytes()
    responses = post_many(app, [(body, acme.headers())] * 5)
    assert [r.status_code for r in responses] == [200] * 5
    assert sorted(r.json()["status"] for r in responses) == ["duplicate"] * 4 + ["processed"]
    assert len(events(db)) == 1 and len(messages(db)) == 1


@pytest.mark.parametrize(
    "name", ["messages.update.json", "qrcode.updated.json", "connection.update.open.json", "status.instance.json"]
)
def test_a_retried_delivery_is_stored_once(client: httpx.Client, db: Conn, acme: Seeded, name: str) -> None:
    body = (SHARED / name).read_bytes()
    assert [_post(client, acme, body)["status"] for _ in range(3)][1:] == ["duplicate", "duplicate"]
    assert len(events(db)) == 1


def test_send_message_and_upsert_of_one_message_share_one_key(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    sent = json.loads((SHARED / "send.message.json").read_bytes())
    echoed = {**sent, "event": "messages.upsert", "data": {**sent["data"], "status": "SERVER_ACK"}}
    assert _post(client, acme, json.dumps(sent).encode())["status"] == "processed"
    assert _post(client, acme, json.dumps(echoed).encode())["status"] == "duplicate"
    assert [e["idem_key"] for e in events(db)] == ["msg:acme-support:3EB0C431C26A1916E1A0A6"]
    assert len(messages(db)) == 1


def test_a_receipt_is_keyed_by_message_and_status(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    for status in ("DELIVERY_ACK", "READ", "DELIVERY_ACK"):
        _post(client, acme, _receipt("3EB0AAA", status))
    assert sorted(e["idem_key"] for e in events(db)) == [
        "status:acme-support:3EB0AAA:DELIVERY_ACK",
        "status:acme-support:3EB0AAA:READ",
    ]


def test_nul_characters_are_stored_sanitised(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    body = incoming_text("olá\u0000mundo\u0000", "NUL1")
    assert b"\\u0000" in body
    _post(client, acme, body)
    (m,) = messages(db)
    assert m["body"] == "olá\ufffdmundo\ufffd"
    (e,) = events(db)
    assert e["payload"]["data"]["message"]["conversation"] == "olá\ufffdmundo\ufffd"


def test_lone_surrogates_are_stored_sanitised(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    body = incoming_text("PLACEHOLDER", "SUR1").replace(b"PLACEHOLDER", b"a\\ud800b \\ud83d\\ude00")
    _post(client, acme, body)
    assert messages(db)[0]["body"] == "a\ufffdb \U0001f600"  # a valid pair is one emoji, a lone half is replaced


SQL_AND_HTML = (
    "Robert'); DROP TABLE t_messages;-- <script>alert(\"x\")</script> & %s %(x)s {0} \\' $1 ; -- é 😀 <b>oi</b>"
)


def test_sql_metacharacters_and_html_are_stored_verbatim(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    _post(client, acme, incoming_text(SQL_AND_HTML, "VERBATIM1"))
    (m,) = messages(db)
    assert m["body"] == SQL_AND_HTML
    (e,) = events(db)
    assert e["payload"]["data"]["message"]["conversation"] == SQL_AND_HTML
    assert e["payload"]["data"]["pushName"] == "Maria Souza"


def test_the_stored_payload_has_secrets_redacted_and_the_rest_intact(
    client: httpx.Client, db: Conn, acme: Seeded
) -> None:
    _post(client, acme, (SHARED / "qrcode.updated.pairing.json").read_bytes())
    (e,) = events(db)
    original = json.loads((SHARED / "qrcode.updated.pairing.json").read_bytes())
    qr = e["payload"]["data"]["qrcode"]
    assert e["payload"]["apikey"] == qr["code"] == qr["base64"] == qr["pairingCode"] == "[REDACTED]"
    assert qr["instance"] == "acme-support" and e["payload"]["date_time"] == original["date_time"]


def test_a_read_receipt_before_the_message_is_merged_and_never_downgraded(
    client: httpx.Client, db: Conn, acme: Seeded
) -> None:
    msg_id = "3EB0C431C26A1916E1A0A6"  # send.message.json's id
    _post(client, acme, _receipt(msg_id, "READ"))
    _post(client, acme, (SHARED / "send.message.json").read_bytes())  # PENDING arrives late
    _post(client, acme, _receipt(msg_id, "DELIVERY_ACK"))  # and the delivery receipt later still
    _post(client, acme, _receipt(msg_id, "SERVER_ACK"))
    (m,) = messages(db)
    assert (m["status"], m["body"], m["message_type"]) == ("read", "Temos horário às 10h ou às 15h.", "conversation")
    assert m["read_at"] is not None and m["delivered_at"] is not None and m["sent_at"] is not None
    assert "placeholder" not in m["meta"] and m["meta"]["event"] == "send.message"


@pytest.mark.parametrize(
    ("sequence", "final"),
    [
        (["SERVER_ACK", "DELIVERY_ACK", "READ"], "read"),
        (["DELIVERY_ACK", "SERVER_ACK"], "delivered"),
        (["PLAYED", "DELIVERY_ACK"], "read"),
        (["SERVER_ACK", "ERROR"], "failed"),
        (["ERROR", "DELIVERY_ACK"], "delivered"),
        (["READ", "ERROR"], "read"),
    ],
)
def test_status_only_moves_forward(
    client: httpx.Client, db: Conn, acme: Seeded, sequence: list[str], final: str
) -> None:
    _post(client, acme, (SHARED / "send.message.json").read_bytes())
    for status in sequence:
        _post(client, acme, _receipt("3EB0C431C26A1916E1A0A6", status))
    (m,) = messages(db)
    assert m["status"] == final
    assert (m["error"] == "ERROR") == ("ERROR" in sequence)


def test_delivery_latency_is_measurable(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    _post(client, acme, (SHARED / "send.message.json").read_bytes())
    _post(client, acme, _receipt("3EB0C431C26A1916E1A0A6", "DELIVERY_ACK"))
    m = one(db, "select delivered_at - sent_at as latency from t_messages")
    assert m["latency"] is not None


def test_our_read_receipt_of_an_incoming_message_keeps_it_received(
    client: httpx.Client, db: Conn, acme: Seeded
) -> None:
    _post(client, acme, (SHARED / "messages.upsert.json").read_bytes())
    _post(client, acme, _receipt("A5F0C1D2E3B4A59687C8D9E0F1A2B3C4", "READ", from_me=False))
    (m,) = messages(db)
    assert (m["direction"], m["status"]) == ("in", "received") and m["read_at"] is not None


def test_a_late_retry_of_an_older_connection_state_does_not_undo_a_newer_one(
    client: httpx.Client, db: Conn, acme: Seeded
) -> None:
    _post(client, acme, (SHARED / "connection.update.open.json").read_bytes())  # 14:31:12
    late = _post(client, acme, (SHARED / "connection.update.connecting.json").read_bytes())  # 14:30:00, retried
    assert (late["status"], late["reason"]) == ("ignored", "stale")
    assert one(db, "select status from t_numbers where id = %s", acme.number_id)["status"] == "open"
    stale_qr = _post(client, acme, (SHARED / "qrcode.updated.json").read_bytes())  # 14:30:01
    assert stale_qr["status"] == "ignored"
    assert one(db, "select last_qr_enc from t_sessions where id = %s", acme.session_id)["last_qr_enc"] is None


def test_close_after_logout_keeps_logged_out_and_records_the_code(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    for name in ("status.instance.json", "logout.instance.json", "connection.update.close.json"):
        _post(client, acme, (SHARED / name).read_bytes())
    n = one(db, "select status, status_reason from t_numbers where id = %s", acme.number_id)
    assert (n["status"], n["status_reason"]) == ("logged_out", "401")


def test_a_qr_scanned_by_another_phone_is_flagged(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    body = json.loads((SHARED / "connection.update.open.json").read_bytes())
    body["data"]["wuid"] = "5511900000000@s.whatsapp.net"
    _post(client, acme, json.dumps(body).encode())
    n = one(db, "select status, status_reason from t_numbers where id = %s", acme.number_id)
    assert (n["status"], n["status_reason"]) == ("open", "other_number:+5511900000000")


def test_the_qr_counter_and_latest_qr_follow_each_new_code(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    base = json.loads((SHARED / "qrcode.updated.json").read_bytes())
    for i in range(3):
        base["data"]["qrcode"]["code"] = f"2@code-{i}"
        base["date_time"] = f"2025-10-21T14:3{i}:00.000Z"
        _post(client, acme, json.dumps(base).encode())
    s = one(db, "select qr_count, last_qr_enc from t_sessions where id = %s", acme.session_id)
    from mirage.crypto import keyring

    qr = keyring().decrypt(s["last_qr_enc"], table="t_sessions", row_id=acme.session_id, field="last_qr")
    assert (s["qr_count"], qr) == (3, "2@code-2")


def test_a_lid_is_learnt_and_then_recognised_alone(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    from tests.webhooks.helpers import LOCAL

    contact = seed_contact(db, acme.tenant_id, CONTACT_NUMBER, "Maria")
    _post(client, acme, (LOCAL / "messages.upsert.lid.json").read_bytes())  # LID + phone: the LID is learnt
    _post(client, acme, (LOCAL / "messages.upsert.lid-only.json").read_bytes())  # LID alone: still Maria
    assert [m["contact_id"] for m in messages(db)] == [contact, contact]


@pytest.mark.parametrize(
    ("stored", "wire"),
    [
        ("+5531998765432", "553198765432@s.whatsapp.net"),  # ninth digit dropped on the wire
        ("+553198765432", "5531998765432@s.whatsapp.net"),  # stored without, arrives with it
        ("+5531998765432", "5531998765432:12@s.whatsapp.net"),  # a device suffix
    ],
)
def test_contacts_match_across_brazils_ninth_digit_and_devices(
    client: httpx.Client, db: Conn, acme: Seeded, stored: str, wire: str
) -> None:
    contact = seed_contact(db, acme.tenant_id, stored)
    _post(client, acme, incoming_text("oi", remote=wire))
    assert messages(db)[0]["contact_id"] == contact


def test_a_message_between_two_bot_numbers_links_both(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    other = seed_number(db, acme.tenant_id, "second", "+5511955550000")
    db.commit()
    _post(client, acme, incoming_text("oi bot", remote="5511955550000@s.whatsapp.net"))
    (m,) = messages(db)
    assert (m["from_number_id"], m["to_number_id"], m["contact_id"]) == (other, acme.number_id, None)


def test_another_tenants_contact_is_never_matched(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    other = seed_instance(db, "other", instance="other-main", number="+5511933330000")
    seed_contact(db, other.tenant_id, CONTACT_NUMBER, "Not yours")
    _post(client, acme, (SHARED / "messages.upsert.json").read_bytes())
    (m,) = messages(db)
    assert m["contact_id"] is None and m["tenant_id"] == acme.tenant_id


def test_an_unknown_sender_is_kept_by_its_jid(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    _post(client, acme, incoming_text("quem é?", remote="5548999990000@s.whatsapp.net"))
    (m,) = messages(db)
    assert (m["contact_id"], m["from_number_id"], m["from_jid"]) == (None, None, "5548999990000@s.whatsapp.net")


@pytest.mark.parametrize(
    ("event", "reason"),
    [("contacts.update", "not_used"), ("presence.update", "not_used"), ("chats.upsert", "not_used")],
)
def test_events_mirage_does_not_use_are_stored_as_ignored(
    client: httpx.Client, db: Conn, acme: Seeded, event: str, reason: str
) -> None:
    assert _post(client, acme, envelope(event, [{"id": "x"}]))["status"] == "ignored"
    (e,) = events(db)
    assert (e["event_type"], e["status"], e["ignored_reason"]) == (event, "ignored", reason)


def test_a_by_events_suffix_that_agrees_is_accepted(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    body = (SHARED / "messages.upsert.json").read_bytes()
    out = _post(client, acme, body, WEBHOOK + "/messages-upsert")
    assert out["status"] == "processed" and "route_mismatch" not in out
    assert "_mirage" not in events(db)[0]["payload"]


def test_a_by_events_suffix_that_disagrees_is_recorded_and_the_body_wins(
    client: httpx.Client, db: Conn, acme: Seeded
) -> None:
    body = (SHARED / "messages.upsert.json").read_bytes()
    out = _post(client, acme, body, WEBHOOK + "/send-message")
    assert out["route_mismatch"] is True and out["event"] == "messages.upsert"
    (e,) = events(db)
    assert e["event_type"] == "messages.upsert" and e["payload"]["_mirage"] == {"route_event": "send-message"}
