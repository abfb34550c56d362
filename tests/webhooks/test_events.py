"""The pure webhook parser: typed events, idempotency keys, JIDs, text; and it never fails but with EnvelopeError."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirage.integrations.evolution import envelope as en
from mirage.integrations.evolution import events as ev
from mirage.integrations.evolution.envelope import EnvelopeError, parse_envelope
from tests.webhooks.helpers import SHARED, envelope

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
EVENT_NAMES = st.sampled_from([*sorted(en.KNOWN_EVENTS.values()), "MESSAGES_UPSERT", "weird.event"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_envelope_error(raw: bytes) -> None:
    try:
        env = parse_envelope(raw)
    except EnvelopeError as e:
        assert e.reason in {"invalid_utf8", "invalid_json", "too_deep", "not_an_object", "bad_event", "bad_instance"}
    else:
        ev.classify(env)


@settings(max_examples=300, deadline=None)
@given(event=EVENT_NAMES, data=json_values, extra=st.dictionaries(st.text(max_size=10), json_values, max_size=3))
def test_any_envelope_classifies_and_stores_cleanly(event: str, data: Any, extra: dict[str, Any]) -> None:
    raw = json.dumps({**extra, "event": event, "instance": "acme-support", "data": data}).encode()
    env = parse_envelope(raw)
    kind = ev.classify(env)
    key = ev.idem_key(env, kind)
    assert isinstance(key, str) and 0 < len(key) <= 256
    stored = json.dumps(env.payload, ensure_ascii=False)
    assert "\x00" not in stored
    stored.encode("utf-8")  # no lone surrogates: Postgres would refuse the row


@settings(max_examples=200, deadline=None)
@given(
    key=st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.text(max_size=200), st.integers(), st.none()),
            "fromMe": st.one_of(st.booleans(), st.text(max_size=3)),
            "remoteJid": st.one_of(st.text(max_size=40), st.sampled_from(["1@lid", "x@g.us", "status@broadcast"])),
            "remoteJidAlt": st.text(max_size=40),
        },
    ),
    message=json_values,
    ts=st.one_of(json_values, st.integers(min_value=-(2**70), max_value=2**70)),
)
def test_message_shapes_never_break_classification(key: dict[str, Any], message: Any, ts: Any) -> None:
    data = {"key": key, "message": message, "messageTimestamp": ts, "contextInfo": message, "status": message}
    for event in ("messages.upsert", "send.message", "messages.update", "messages.delete"):
        kind = ev.classify(parse_envelope(envelope(event, data)))
        assert kind.ignored is None or isinstance(kind.ignored, str)


def test_nul_and_lone_surrogates_are_replaced_everywhere() -> None:
    data = b'{"a\\u0000b": ["x\\u0000", "\\ud800", "\\ud83d\\ude00"]}'
    raw = b'{"event": "messages.upsert", "instance": "i", "data": ' + data + b"}"
    env = parse_envelope(raw)
    assert env.data == {"a\ufffdb": ["x\ufffd", "\ufffd", "\U0001f600"]}


def test_redaction_covers_apikey_nested_secrets_and_the_qr() -> None:
    doc = {
        "apikey": "T",
        "data": {
            "qrcode": {"code": "2@x", "base64": "data:", "pairingCode": "WZ", "instance": "i"},
            "message": {"messageContextInfo": {"messageSecret": "s"}, "conversation": "token is fine as a value"},
            "headers": {"Authorization": "Bearer x", "jwt_key": "k", "x-webhook-secret": "w"},
            "code": "not a qr outside qrcode",
        },
        "sender": "5511@s.whatsapp.net",
    }
    out = en.redact(doc)
    assert out["apikey"] == en.REDACTED and out["sender"] == doc["sender"]
    assert out["data"]["qrcode"] == {
        "code": en.REDACTED,
        "base64": en.REDACTED,
        "pairingCode": en.REDACTED,
        "instance": "i",
    }
    assert out["data"]["message"]["messageContextInfo"]["messageSecret"] == en.REDACTED
    assert out["data"]["message"]["conversation"] == "token is fine as a value"
    assert set(out["data"]["headers"].values()) == {en.REDACTED}
    assert out["data"]["code"] == "not a qr outside qrcode"
    assert en.redact({"apikey": None})["apikey"] is None  # nothing to hide when Evolution sends null


def test_redaction_copies_only_the_containers_it_changes() -> None:
    clean_part = {"key": {"id": "A1", "remoteJid": "5521@s.whatsapp.net"}, "list": [{"x": 1}]}
    doc = {"apikey": "T", "data": clean_part, "items": [{"token": "t"}, {"y": 2}]}
    out = en.redact(doc)
    assert doc["apikey"] == "T" and doc["items"][0] == {"token": "t"}  # the input is never changed
    assert out["data"] is clean_part  # nothing to hide below: shared, not copied
    assert out["items"][0] == {"token": en.REDACTED} and out["items"][1] is doc["items"][1]
    assert en.redact(clean_part) is clean_part


def test_secret_keys_are_still_redacted_once_many_distinct_keys_were_seen() -> None:
    for i in range(5000):  # more distinct key names than the memo keeps
        en.redact({f"k{i}": 1})
    assert en.redact({"apikey": "T", "plain": "v"}) == {"apikey": en.REDACTED, "plain": "v"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"event": "x", "instance": "i", "data": [[{"n": [1e999]}]]}', "invalid_json"),
        (b'{"event": "x", "instance": "i", "data": -1e400}', "invalid_json"),
        (b"[" * 66 + b"]" * 66, "too_deep"),
        (b'{"event": "x", "instance": "i", "d": ' + b'{"a": ' * 65 + b"1" + b"}" * 65 + b"}", "too_deep"),
    ],
)
def test_infinite_numbers_and_deep_nesting_are_refused_wherever_they_are(raw: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError) as refused:
        parse_envelope(raw)
    assert refused.value.reason == reason


def test_a_shallow_body_with_many_brackets_in_its_text_is_accepted() -> None:
    raw = json.dumps({"event": "messages.upsert", "instance": "i", "data": {"text": "[{" * 100}}).encode()
    assert parse_envelope(raw).data == {"text": "[{" * 100}


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("messages.upsert", "messages.upsert"),
        ("MESSAGES_UPSERT", "messages.upsert"),
        ("messages-upsert", "messages.upsert"),
        ("group-participants.update", "group-participants.update"),
        ("GROUP_PARTICIPANTS_UPDATE", "group-participants.update"),
        ("typebot-change-status", "typebot.change-status"),
        ("Some.New.Event", "some.new.event"),
        ("bad event", None),
        ("", None),
        ("x" * 200, None),
    ],
)
def test_event_names_are_canonical(name: str, canonical: str | None) -> None:
    assert en.canonical_event(name) == canonical


@pytest.mark.parametrize(
    ("jid", "kind", "phone"),
    [
        ("5521998765432@s.whatsapp.net", "pn", "+5521998765432"),
        ("5521998765432:12@s.whatsapp.net", "pn", "+5521998765432"),
        ("5521998765432@c.us", "pn", "+5521998765432"),
        ("176526487654321@lid", "lid", None),
        ("120363025246125888@g.us", "group", None),
        ("5511999999999-1612345678@g.us", "group", None),
        ("status@broadcast", "status", None),
        ("1234@broadcast", "broadcast", None),
        ("120363@newsletter", "newsletter", None),
        ("abc@s.whatsapp.net", "other", None),
        ("0551199@s.whatsapp.net", "other", None),
    ],
)
def test_jids(jid: str, kind: str, phone: str | None) -> None:
    parsed = ev.parse_jid(jid)
    assert parsed is not None and (parsed.kind, parsed.phone) == (kind, phone)


@pytest.mark.parametrize(
    ("jids", "phone", "lid"),
    [
        (("176526487654321@lid", "5521998765432@s.whatsapp.net"), "+5521998765432", "176526487654321@lid"),  # 2.3.6
        (("5521998765432@s.whatsapp.net", "5521998765432@s.whatsapp.net"), "+5521998765432", None),  # 2.3.7
        (("5521998765432@s.whatsapp.net", "176526487654321@lid"), "+5521998765432", "176526487654321@lid"),  # 2.4
        (("176526487654321@lid", None, "5521998765432@s.whatsapp.net"), "+5521998765432", "176526487654321@lid"),
        (("176526487654321@lid",), None, "176526487654321@lid"),  # no phone delivered at all
    ],
)
def test_the_peer_is_found_whatever_the_version(jids: tuple[Any, ...], phone: str | None, lid: str | None) -> None:
    peer = ev.resolve_peer(*jids)
    assert (peer.phone, peer.lid) == (phone, lid)


@pytest.mark.parametrize(
    ("number", "candidates"),
    [
        ("+5531998765432", ("+5531998765432", "+553198765432")),
        ("+553198765432", ("+553198765432", "+5531998765432")),
        ("+553132165432", ("+553132165432",)),  # a landline has no ninth digit
        ("+14155550100", ("+14155550100",)),
        (None, ()),
    ],
)
def test_phone_candidates_cover_brazils_ninth_digit(number: str | None, candidates: tuple[str, ...]) -> None:
    assert ev.phone_candidates(number) == candidates


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1761057639, datetime(2025, 10, 21, 14, 40, 39, tzinfo=UTC)),
        ("1761057639", datetime(2025, 10, 21, 14, 40, 39, tzinfo=UTC)),
        (1761057639000, datetime(2025, 10, 21, 14, 40, 39, tzinfo=UTC)),
        ({"low": 1761057639, "high": 0, "unsigned": False}, datetime(2025, 10, 21, 14, 40, 39, tzinfo=UTC)),
        (-5, None),
        (10**30, None),
        ("soon", None),
        (True, None),
    ],
)
def test_message_timestamps(value: Any, expected: datetime | None) -> None:
    assert ev.epoch(value) == expected


@pytest.mark.parametrize(
    ("wa_status", "status"),
    [("SERVER_ACK", "sent"), ("DELIVERY_ACK", "delivered"), ("READ", "read"), ("PLAYED", "read"), ("ERROR", "failed"),
     ("PENDING", "sending"), (3, "delivered"), ("DELETED", None)],
)  # fmt: skip
def test_receipt_statuses(wa_status: Any, status: str | None) -> None:
    kind = ev.classify(parse_envelope(envelope("messages.update", {"keyId": "K", "fromMe": True, "status": wa_status})))
    assert isinstance(kind, ev.StatusEvent) and kind.status == status


def test_status_order_never_lets_failed_beat_a_receipt() -> None:
    rank = ev.status_rank
    assert rank("sending") < rank("sent") < rank("failed") < rank("delivered") < rank("read") < rank("received")


def test_idempotency_keys() -> None:
    upsert = parse_envelope((SHARED / "messages.upsert.fromme-phone.json").read_bytes())
    sent = parse_envelope(envelope("send.message", {"key": {"id": "3A9F2B1C0D8E7F6A5B4C", "fromMe": True}}))
    receipt = parse_envelope((SHARED / "messages.update.json").read_bytes())
    other = parse_envelope((SHARED / "connection.update.open.json").read_bytes())
    assert ev.idem_key(upsert, ev.classify(upsert)) == ev.idem_key(sent, ev.classify(sent))
    assert ev.idem_key(receipt, ev.classify(receipt)) == "status:acme-support:3EB0C431C26A1916E1A0A6:DELIVERY_ACK"
    assert ev.idem_key(other, ev.classify(other)) == f"sha256:{other.body_sha256}"
    long_id = parse_envelope(
        envelope("messages.upsert", {"key": {"id": "A" * 128, "remoteJid": "1@lid"}}, instance="i" * 100)
    )
    assert len(ev.idem_key(long_id, ev.classify(long_id))) <= 256


@pytest.mark.parametrize(
    ("message", "text", "mtype"),
    [
        ({"conversation": "oi"}, "oi", "conversation"),
        ({"extendedTextMessage": {"text": "link"}}, "link", "extendedTextMessage"),
        ({"imageMessage": {"caption": "foto"}}, "foto", "imageMessage"),
        ({"ephemeralMessage": {"message": {"conversation": "some"}}}, "some", "conversation"),
        (
            {"documentWithCaptionMessage": {"message": {"documentMessage": {"caption": "pdf"}}}},
            "pdf",
            "documentMessage",
        ),
        ({"stickerMessage": {"url": "x"}}, None, "stickerMessage"),
        ({"messageContextInfo": {}}, None, "unknown"),
    ],
)
def test_text_and_type_extraction(message: dict[str, Any], text: str | None, mtype: str) -> None:
    kind = ev.classify(
        parse_envelope(envelope("messages.upsert", {"key": {"id": "1", "remoteJid": "1@lid"}, "message": message}))
    )
    assert isinstance(kind, ev.MessageEvent) and (kind.text, kind.message_type) == (text, mtype)
