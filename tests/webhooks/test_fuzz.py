"""Bad input never causes a 500: random bytes, random headers and authenticated but strange envelopes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
import redis as redis_lib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.webhooks.helpers import WEBHOOK, Seeded, envelope, events

Conn = psycopg.Connection[Any]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Numbers at their extremes (issue 10 item 2): JSON integers have no limit, doubles reach 1.8e308.
extreme_numbers = st.sampled_from(
    [10**400, -(10**400), 2**63, -(2**63) - 1, 2**31, -(2**31) - 1, 1.7976931348623157e308, -1.7976931348623157e308]
) | st.integers(min_value=-(10**400), max_value=10**400)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | extreme_numbers
)
protobuf_longs = st.fixed_dictionaries({"low": scalars, "high": scalars}, optional={"unsigned": st.booleans()})
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=15,
)
jids = st.sampled_from(
    ["5521998765432@s.whatsapp.net", "176526487654321@lid", "120363@g.us", "status@broadcast", "x@y", "", "@", "1@lid"]
) | st.text(max_size=30)
message_data = st.fixed_dictionaries(
    {
        "key": st.fixed_dictionaries(
            {},
            optional={
                "id": st.text(min_size=1, max_size=40) | st.integers(),
                "remoteJid": jids,
                "remoteJidAlt": jids,
                "fromMe": st.booleans() | scalars,
            },
        ),
    },
    optional={
        "message": json_values,
        "messageType": scalars,
        "messageTimestamp": scalars | protobuf_longs,
        "contextInfo": json_values,
        "status": st.sampled_from(["PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ", "ERROR", "DELETED"]) | scalars,
        "keyId": st.text(max_size=40),
        "state": st.sampled_from(["open", "close", "connecting", "refused", "?"]) | scalars,
        "statusReason": scalars,
        "wuid": jids,
        "qrcode": st.fixed_dictionaries({}, optional={"code": scalars, "base64": scalars, "pairingCode": scalars}),
        "statusCode": scalars,
        "instanceId": scalars,
    },
)
event_names = st.sampled_from(
    [
        "messages.upsert",
        "send.message",
        "messages.update",
        "messages.delete",
        "connection.update",
        "qrcode.updated",
        "logout.instance",
        "remove.instance",
        "instance.create",
        "status.instance",
        "contacts.update",
    ]
)


@FUZZ
@given(body=st.binary(max_size=400))
def test_random_bytes_get_a_4xx(client: httpx.Client, acme: Seeded, body: bytes) -> None:
    r = client.post(WEBHOOK, content=body, headers=acme.headers())
    assert r.status_code in (200, 400, 401), r.text


@FUZZ
@given(
    name=st.sampled_from(["x-webhook-secret", "x-signature", "authorization", "x-request-id", "content-length"]),
    value=st.binary(min_size=0, max_size=80).filter(lambda v: b"\r" not in v and b"\n" not in v and b"\x00" not in v),
)
def test_random_credential_headers_get_401_not_500(
    client: httpx.Client, db: Conn, acme: Seeded, name: str, value: bytes
) -> None:
    body = envelope("messages.upsert", {"key": {"id": "FUZZ1", "remoteJid": "1@lid"}})
    headers = {"content-type": "application/json", name: value}
    r = client.post(WEBHOOK, content=body, headers=headers)  # type: ignore[arg-type]
    assert r.status_code in (400, 401, 413), r.text
    assert events(db) == []


@FUZZ
@given(event=event_names, data=message_data | json_values, date_time=scalars)
def test_authenticated_strange_envelopes_are_stored_and_normalised(
    client: httpx.Client, db: Conn, acme: Seeded, redis: redis_lib.Redis, event: str, data: Any, date_time: Any
) -> None:
    r = client.post(WEBHOOK, content=envelope(event, data, date_time=date_time), headers=acme.headers())
    assert r.status_code == 200, r.text
    assert r.json()["status"] in ("processed", "ignored", "duplicate"), r.text  # never the deferred fallback


@FUZZ
@given(doc=json_values)
def test_any_json_document_gets_an_answer_not_a_crash(client: httpx.Client, acme: Seeded, doc: Any) -> None:
    r = client.post(WEBHOOK, content=json.dumps(doc).encode(), headers=acme.headers())
    assert r.status_code in (400, 401), r.text
