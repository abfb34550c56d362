"""Issue 10's ingest findings, each proved on the real app and database: numbers at their extremes get an
answer (never a 500), a delete before its message is kept as a tombstone, a deprovisioned session cannot
change its number, a date from the future cannot silence a later disconnect, and the QR goes once `open`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from mirage.integrations.evolution.envelope import KNOWN_EVENTS, envelope_from_document
from mirage.integrations.evolution.events import OtherEvent, classify, epoch
from tests.webhooks.helpers import LOCAL, SHARED, WEBHOOK, Seeded, envelope, events, messages, one

Conn = psycopg.Connection[Any]

# Numbers past every bound a field could have: arbitrary-precision integers (Python and JSON allow them),
# the int64 edges, the largest finite doubles, and protobuf Longs whose halves are out of range.
EXTREMES: tuple[Any, ...] = (
    10**400,
    -(10**400),
    2**63,
    -(2**63) - 1,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    {"low": 10**400, "high": 0, "unsigned": True},
    {"low": 0, "high": 10**400, "unsigned": False},
    {"low": -(10**400), "high": -(10**400)},
)
# One of each kind for the per-field sweep (an arbitrary-precision integer either way, the largest double, a Long
# with an out-of-range half), which posts every field of every event type once per value.
SWEEP = (10**400, -(10**400), -1.7976931348623157e308, {"low": 0, "high": 10**400, "unsigned": False})


def _post(client: httpx.Client, acme: Seeded, body: bytes) -> dict[str, Any]:
    r = client.post(WEBHOOK, content=body, headers=acme.headers())
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --- item 2: numeric extremes ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [*EXTREMES, str(10**11)[:12], "9" * 12, 10**11 + 1, float(10**15)])
def test_epoch_of_an_extreme_number_is_none_or_a_time_never_an_error(value: Any) -> None:
    result = epoch(value)
    assert result is None or 2009 <= result.year <= 2100


def _leaves(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a scalar (and to every container, which a number may replace too) below `doc`."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*path, k)
            yield from _leaves(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*path, i)
            yield from _leaves(v, (*path, i))


def _replaced_all(doc: Any, paths: list[tuple[Any, ...]], value: Any) -> Any:
    """`doc` with every scalar leaf (not the containers) replaced by `value`."""
    copy = json.loads(json.dumps(doc))
    for path in paths:
        target = copy
        for step in path[:-1]:
            target = target[step]
        if not isinstance(target[path[-1]], dict | list):
            target[path[-1]] = value
    return copy


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(doc))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


# Every field an event type is read for, for the event types without a fixture of their own.
_GENERIC_DATA = {
    "key": {"id": "GEN1", "remoteJid": "5521998765432@s.whatsapp.net", "fromMe": False},
    "keyId": "GEN1",
    "messageTimestamp": 1761057639,
    "status": 3,
    "state": "open",
    "statusReason": 200,
    "statusCode": 200,
    "instanceId": 7,
    "qrcode": {"code": "2@x", "pairingCode": "AB12CD34", "count": 1},
}


def _one_body_per_event() -> list[tuple[str, dict[str, Any]]]:
    """A real fixture for each event type that has one, else a body carrying every field Mirage reads."""
    seen: dict[str, dict[str, Any]] = {}
    for path in sorted(SHARED.glob("*.json")) + sorted(LOCAL.glob("*.json")):
        doc = json.loads(path.read_bytes())
        if isinstance(doc, dict) and isinstance(doc.get("event"), str):
            seen.setdefault(doc["event"], doc)
    for event in KNOWN_EVENTS.values():
        seen.setdefault(event, json.loads(envelope(event, _GENERIC_DATA)))
    return sorted(seen.items())


@pytest.mark.parametrize(("event", "doc"), _one_body_per_event(), ids=[e for e, _ in _one_body_per_event()])
def test_numeric_extremes_in_every_field_of_every_event_get_an_answer_not_a_500(
    client: httpx.Client, db: Conn, acme: Seeded, event: str, doc: dict[str, Any]
) -> None:
    paths = [p for p in _leaves(doc) if p[0] not in ("event", "instance")]  # those two decide the route and auth
    assert paths
    acted_on = not isinstance(classify(envelope_from_document(doc, "")), OtherEvent)
    for value in SWEEP:
        # Fields of an event Mirage reads are tried one at a time; an event it only stores, all at once.
        bodies = [_replaced(doc, p, value) for p in paths] if acted_on else [_replaced_all(doc, paths, value)]
        for changed in bodies:
            r = client.post(WEBHOOK, content=json.dumps(changed).encode(), headers=acme.headers())
            assert r.status_code == 200, (value, r.status_code, r.text, changed)
            assert r.json()["status"] in ("processed", "ignored", "duplicate"), (value, r.text, changed)


@pytest.mark.parametrize("raw", [b"1" + b"0" * 400, b'{"low": 1, "high": 1' + b"0" * 400 + b"}"])
def test_a_message_timestamp_of_ten_to_the_400_is_stored_without_its_time(
    client: httpx.Client, db: Conn, acme: Seeded, raw: bytes
) -> None:
    body = envelope("messages.upsert", {"key": {"id": "BIGTS1", "remoteJid": "5521998765432@s.whatsapp.net"}})
    body = body.replace(b'"key"', b'"messageTimestamp": ' + raw + b', "key"', 1)
    assert _post(client, acme, body)["status"] == "processed"
    (m,) = messages(db)
    assert m["wa_ts"] is None


def test_the_connection_stays_usable_after_a_huge_number(client: httpx.Client, acme: Seeded) -> None:
    huge = envelope("messages.upsert", {"key": {"id": "BIGTS2", "remoteJid": "1@lid"}, "messageTimestamp": 10**400})
    assert client.post(WEBHOOK, content=huge, headers=acme.headers()).status_code == 200
    assert client.get("/healthz").status_code == 200


# --- item 3: a delete before its message ----------------------------------------------------------------


def test_a_delete_before_its_message_is_kept_and_applied_when_the_message_comes(
    client: httpx.Client, db: Conn, acme: Seeded
) -> None:
    delete = (LOCAL / "messages.delete.json").read_bytes()
    assert _post(client, acme, delete)["status"] == "processed"
    assert _post(client, acme, delete)["status"] == "duplicate"  # a retry of the delete changes nothing
    _post(client, acme, (SHARED / "messages.upsert.json").read_bytes())  # the message, late
    (m,) = messages(db)
    assert m["meta"]["deleted"] is True and "placeholder" not in m["meta"]
    assert (m["direction"], m["status"], m["body"]) == ("in", "received", "Olá! Vocês abrem no sábado?")


def test_a_delete_after_its_message_marks_it_deleted(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    _post(client, acme, (SHARED / "messages.upsert.json").read_bytes())
    _post(client, acme, (LOCAL / "messages.delete.json").read_bytes())
    (m,) = messages(db)
    assert m["meta"]["deleted"] is True and m["body"] == "Olá! Vocês abrem no sábado?"


# --- item 4: a deprovisioned session ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture", ["connection.update.open.json", "qrcode.updated.json", "connection.update.connecting.json"]
)
def test_events_of_a_deprovisioned_session_do_not_change_the_number(
    client: httpx.Client, db: Conn, acme: Seeded, fixture: str
) -> None:
    from mirage.db import evolution_sessions as store

    session = store.load_session(db, acme.session_id)
    assert session is not None
    store.mark_deprovisioned(db, session)
    answer = _post(client, acme, (SHARED / fixture).read_bytes())  # signed with the old, still valid, secret
    assert (answer["status"], answer["reason"]) == ("ignored", "session_inactive")
    n = one(db, "select status, session_id, connected_at from t_numbers where id = %s", acme.number_id)
    assert (n["status"], n["session_id"], n["connected_at"]) == ("removed", None, None)
    s = one(db, "select state, last_qr_enc from t_sessions where id = %s", acme.session_id)
    assert (s["state"], s["last_qr_enc"]) == ("close", None)


# --- item 5: a date from the future ----------------------------------------------------------------------


def test_a_state_event_from_the_future_does_not_make_a_later_close_stale(
    client: httpx.Client, db: Conn, acme: Seeded
) -> None:
    now = datetime.now(UTC)
    opened = json.loads((SHARED / "connection.update.open.json").read_bytes())
    opened["date_time"] = _iso(now + timedelta(hours=1))  # a clock step on Evolution's host
    assert _post(client, acme, json.dumps(opened).encode())["status"] == "processed"
    closed = json.loads((SHARED / "connection.update.close.json").read_bytes())
    closed["date_time"] = _iso(now + timedelta(seconds=5))
    assert _post(client, acme, json.dumps(closed).encode())["status"] == "processed"
    assert one(db, "select status from t_numbers where id = %s", acme.number_id)["status"] == "close"
    (first, _) = events(db)
    assert first["wa_ts"] <= first["received_at"] + timedelta(seconds=1)  # stored clamped to its receipt


def test_a_late_retry_from_the_past_is_still_stale(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    now = datetime.now(UTC)
    opened = json.loads((SHARED / "connection.update.open.json").read_bytes())
    opened["date_time"] = _iso(now - timedelta(seconds=5))
    _post(client, acme, json.dumps(opened).encode())
    late = json.loads((SHARED / "connection.update.connecting.json").read_bytes())
    late["date_time"] = _iso(now - timedelta(minutes=5))
    assert _post(client, acme, json.dumps(late).encode())["reason"] == "stale"


# --- item 10: the QR goes once the phone links ------------------------------------------------------------


def test_the_qr_is_cleared_once_the_session_is_open(client: httpx.Client, db: Conn, acme: Seeded) -> None:
    _post(client, acme, (SHARED / "qrcode.updated.pairing.json").read_bytes())
    s = one(db, "select last_qr_enc, pairing_code_enc from t_sessions where id = %s", acme.session_id)
    assert s["last_qr_enc"] is not None
    opened = json.loads((SHARED / "connection.update.open.json").read_bytes())
    opened["date_time"] = "2025-10-21T15:00:00.000Z"  # after the QR
    _post(client, acme, json.dumps(opened).encode())
    s = one(db, "select state, last_qr_enc, pairing_code_enc, qr_count from t_sessions where id = %s", acme.session_id)
    assert (s["state"], s["last_qr_enc"], s["pairing_code_enc"], s["qr_count"]) == ("open", None, None, 0)
