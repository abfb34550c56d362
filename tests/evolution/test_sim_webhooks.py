"""The simulator's webhook deliveries, captured by a real receiver: headers, JWT, envelope, retries, behaviour."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import jwt
import pytest

from mirage.integrations.evolution.models import WebhookConfig
from mirage.integrations.evolution_sim import ChaosConfig, HumanConfig, SimHandle
from mirage.integrations.evolution_sim.config import OPTOUT_REPLIES
from tests.evolution.helpers import Receiver, fixture, wait_until

SECRET, JWT_KEY = "s3cr3t-" + "x" * 36, "jwt-key-" + "y" * 35
PHONE_A, PHONE_B, HUMAN = "+5511912345678", "+5511987654321", "+5521998765432"


def hook(receiver: Receiver, **kw: object) -> WebhookConfig:
    return WebhookConfig(url=receiver.url + "/api/webhooks/evolution", secret=SECRET, jwt_key=JWT_KEY, **kw)  # type: ignore[arg-type]


def open_instance(sim: SimHandle, receiver: Receiver, name: str, phone: str, **kw: object) -> str:
    with sim.client() as client:
        token = client.create_instance(name, webhook=hook(receiver, **kw)).token
    sim.scan(name, phone)
    return token


def test_deliveries_carry_the_secret_header_and_a_bearer_jwt_instead_of_jwt_key(
    sim: SimHandle, receiver: Receiver
) -> None:
    with sim.client() as client:
        client.create_instance("h1", webhook=hook(receiver))
    got = receiver.wait_for("qrcode.updated")[0]
    assert got.path == "/api/webhooks/evolution"
    assert got.headers["x-webhook-secret"] == SECRET and "jwt_key" not in got.headers
    assert got.headers["content-type"].startswith("application/json")
    assert got.headers["user-agent"].startswith("axios/")
    scheme, token = got.headers["authorization"].split(" ", 1)
    claims = jwt.decode(token, JWT_KEY, algorithms=["HS256"])
    assert scheme == "Bearer" and claims["app"] == "evolution" and claims["action"] == "webhook"
    assert claims["exp"] - claims["iat"] == 600 and abs(claims["iat"] - time.time()) < 60
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-key-" + "z" * 32, algorithms=["HS256"])


def test_envelope_has_evolution_keys_and_a_sender_only_once_connected(sim: SimHandle, receiver: Receiver) -> None:
    open_instance(sim, receiver, "e1", PHONE_A)
    qr = receiver.wait_for("qrcode.updated")[0].body
    opened = next(r.body for r in receiver.wait_for("connection.update", 2) if r.body["data"]["state"] == "open")
    assert list(qr) == list(fixture("qrcode.updated.json"))  # same keys, same order, no sender
    assert list(opened) == list(fixture("connection.update.open.json"))
    assert opened["sender"] == "5511912345678@s.whatsapp.net" and opened["apikey"] is None
    assert opened["destination"] == receiver.url + "/api/webhooks/evolution"
    assert opened["server_url"] == sim.url and opened["date_time"].endswith("Z")


@pytest.mark.parametrize(
    ("event", "suffix"), [("qrcode.updated", "qrcode-updated"), ("connection.update", "connection-update")]
)
def test_by_events_appends_the_event_to_the_url(sim: SimHandle, receiver: Receiver, event: str, suffix: str) -> None:
    with sim.client() as client:
        client.create_instance("b1", webhook=hook(receiver, by_events=True))
    got = receiver.wait_for(event)[0]
    assert got.path == f"/api/webhooks/evolution/{suffix}"
    assert got.body["destination"] == receiver.url + "/api/webhooks/evolution"


@pytest.mark.parametrize("expose", [True, False])
def test_apikey_is_the_instance_token_only_when_exposed(
    make_sim: Callable[..., SimHandle], receiver: Receiver, expose: bool
) -> None:
    sim = make_sim(expose_token=expose)
    with sim.client() as client:
        token = client.create_instance("x1", webhook=hook(receiver)).token
    assert receiver.wait_for("qrcode.updated")[0].body["apikey"] == (token if expose else None)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_non_retryable_statuses_are_delivered_once(sim: SimHandle, receiver: Receiver, status: int) -> None:
    with sim.client() as client:
        client.create_instance("n1", webhook=hook(receiver), qrcode=False)
    receiver.statuses.extend([status])
    [delivery] = sim.emit("n1", "messages.upsert", fixture("messages.upsert.json")["data"])
    assert delivery["status"] == status and delivery["attempts"] == 1 and not delivery["ok"]
    assert len(receiver.events("messages.upsert")) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_other_failures_are_retried_until_a_2xx(sim: SimHandle, receiver: Receiver, status: int) -> None:
    with sim.client() as client:
        client.create_instance("n2", webhook=hook(receiver), qrcode=False)
    receiver.statuses.extend([status, status])
    [delivery] = sim.emit("n2", "messages.upsert", fixture("messages.upsert.json")["data"])
    assert delivery["ok"] and delivery["attempts"] == 3 and delivery["status"] == 200
    assert len(receiver.events("messages.upsert")) == 3


def test_a_message_between_instances_reaches_the_receiver_and_acks_the_sender(
    sim: SimHandle, receiver: Receiver
) -> None:
    token = open_instance(sim, receiver, "alice", PHONE_A)
    open_instance(sim, receiver, "bob", PHONE_B)
    with sim.client() as client:
        sent = client.send_text("alice", PHONE_B, "Bom dia, Bob! ☀️", token=token)
    upsert = receiver.wait_for("messages.upsert", instance="bob")[0].body["data"]
    assert upsert["key"] == {
        "remoteJid": "5511912345678@s.whatsapp.net",
        "fromMe": False,
        "id": sent.id,
        "addressingMode": "pn",
    }
    assert upsert["message"]["conversation"] == "Bom dia, Bob! ☀️" and upsert["status"] == "DELIVERY_ACK"
    send = receiver.wait_for("send.message", instance="alice")[0].body["data"]
    assert send["key"]["id"] == sent.id and send["status"] == "PENDING" and send["pushName"] == "Você"
    updates = receiver.wait_for("messages.update", 2, instance="alice")
    assert {u.body["data"]["status"] for u in updates} == {"DELIVERY_ACK", "READ"}
    assert all(u.body["data"]["keyId"] == sent.id and u.body["data"]["fromMe"] is True for u in updates)


def test_marking_a_message_read_sends_read_to_its_sender(
    make_sim: Callable[..., SimHandle], receiver: Receiver
) -> None:
    sim = make_sim(read_after_s=None)
    token_a = open_instance(sim, receiver, "ra", PHONE_A)
    token_b = open_instance(sim, receiver, "rb", PHONE_B)
    with sim.client() as client:
        sent = client.send_text("ra", PHONE_B, "leu?", token=token_a)
        receiver.wait_for("messages.update", instance="ra")  # DELIVERY_ACK only
        assert [u.body["data"]["status"] for u in receiver.events("messages.update", "ra")] == ["DELIVERY_ACK"]
        key = receiver.wait_for("messages.upsert", instance="rb")[0].body["data"]["key"]
        client.mark_read("rb", [key], token=token_b)
    read = receiver.wait_for("messages.update", 2, instance="ra")[1].body["data"]
    assert read["status"] == "READ" and read["keyId"] == sent.id


def _chatty() -> HumanConfig:
    return HumanConfig(reply_probability=1.0, optout_probability=0.0, min_reply_delay_s=1.0, max_reply_delay_s=2.0)


def test_people_reply_from_their_script_and_stop_for_good_after_opting_out(
    make_sim: Callable[..., SimHandle], receiver: Receiver
) -> None:
    sim = make_sim(human=_chatty())
    token = open_instance(sim, receiver, "out", PHONE_A)
    sim.script(HUMAN, ["Oi! Quem fala?", "SAIR"])
    texts = []
    with sim.client() as client:
        for n, text in enumerate(["Olá, tudo bem?", "Sou da padaria 🥖"], start=1):
            client.send_text("out", HUMAN, text, token=token)
            reply = receiver.wait_for("messages.upsert", n, instance="out")[-1].body["data"]
            texts.append(reply["message"]["conversation"])
        assert reply["key"]["remoteJid"] == "5521998765432@s.whatsapp.net" and reply["key"]["fromMe"] is False
        sent = client.send_text("out", HUMAN, "Posso te mandar as promoções?", token=token)
    wait_until(
        lambda: any(
            u.body["data"]["keyId"] == sent.id and u.body["data"]["status"] == "READ"
            for u in receiver.events("messages.update", "out")
        )
    )
    time.sleep(0.3)  # longer than any scaled reply delay: a reply would have arrived by now
    assert texts == ["Oi! Quem fala?", "SAIR"] and len(receiver.events("messages.upsert", "out")) == 2


def test_people_may_answer_with_an_optout_word(make_sim: Callable[..., SimHandle], receiver: Receiver) -> None:
    human = _chatty()
    human.optout_probability = 1.0
    sim = make_sim(human=human)
    token = open_instance(sim, receiver, "o2", PHONE_A)
    with sim.client() as client:
        client.send_text("o2", HUMAN, "Oi!", token=token)
    reply = receiver.wait_for("messages.upsert", instance="o2")[0].body["data"]
    assert reply["message"]["conversation"] in OPTOUT_REPLIES and reply["source"] == "android"


def test_people_addressed_by_lid_carry_their_phone_in_remote_jid_alt(
    make_sim: Callable[..., SimHandle], receiver: Receiver
) -> None:
    human = _chatty()
    human.lid_probability = 1.0
    sim = make_sim(human=human)
    open_instance(sim, receiver, "lid", PHONE_A)
    sim.say(HUMAN, "lid", "oi, sou eu")
    key = receiver.wait_for("messages.upsert", instance="lid")[0].body["data"]["key"]
    assert key["remoteJid"].endswith("@lid") and key["addressingMode"] == "lid"
    assert key["remoteJidAlt"] == "5521998765432@s.whatsapp.net"


def test_emit_delivers_any_body_to_the_instance_webhook_like_evolution(sim: SimHandle, receiver: Receiver) -> None:
    with sim.client() as client:
        client.create_instance("em", webhook=hook(receiver), qrcode=False)
    data = fixture("messages.upsert.json")["data"]
    [delivery] = sim.emit("em", "messages.upsert", data)
    body = receiver.events("messages.upsert", "em")[0].body
    assert delivery["ok"] and body["data"] == data and body["instance"] == "em" and body["event"] == "messages.upsert"
    assert sim.emit("em", "contacts.update", {"id": "x"}) == []  # not subscribed: Evolution sends nothing
    assert len(sim.emit("em", "contacts.update", {"id": "x"}, ignore_filter=True)) == 1


def test_qr_codes_refresh_until_the_limit_then_the_state_is_refused_then_close(
    make_sim: Callable[..., SimHandle], receiver: Receiver
) -> None:
    sim = make_sim(qr_interval_s=0.05, qr_limit=3, refused_hold_s=0.2)
    with sim.client() as client:
        token = client.create_instance("q1", webhook=hook(receiver)).token
        qrs = receiver.wait_for("qrcode.updated", 4, instance="q1")
        refused = wait_until(
            lambda: [r for r in receiver.events("connection.update", "q1") if r.body["data"]["state"] == "refused"]
        )
        assert wait_until(lambda: client.connection_state("q1", token=token) == "close")
    codes = [q.body["data"]["qrcode"]["code"] for q in qrs[:3]]
    assert len(set(codes)) == 3
    assert qrs[3].body["data"] == {"message": "QR code limit reached, please login again", "statusCode": 500}
    assert refused[0].body["data"]["statusReason"] == 428


def test_logout_and_delete_emit_their_events_in_evolution_order(sim: SimHandle, receiver: Receiver) -> None:
    token = open_instance(sim, receiver, "ld", PHONE_A)
    with sim.client() as client:
        client.logout("ld", token=token)
        client.delete_instance("ld", token=token)
    receiver.wait_for("remove.instance", instance="ld")
    status = receiver.wait_for("status.instance", instance="ld")[0].body
    assert status["data"]["status"] == "closed" and status["data"]["disconnectionReasonCode"] == 401
    assert receiver.wait_for("logout.instance", instance="ld")[0].body["data"] is None
    close = [r for r in receiver.events("connection.update", "ld") if r.body["data"]["state"] == "close"]
    assert close[0].body["data"]["statusReason"] == 401


def test_chaos_duplicates_deliver_each_event_twice(make_sim: Callable[..., SimHandle], receiver: Receiver) -> None:
    sim = make_sim(chaos=ChaosConfig(duplicate_rate=1.0))
    with sim.client() as client:
        client.create_instance("dup", webhook=hook(receiver), qrcode=False)
    deliveries = sim.emit("dup", "messages.upsert", fixture("messages.upsert.json")["data"])
    wait_until(lambda: len(receiver.events("messages.upsert")) == 2)
    first, second = (r.body for r in receiver.events("messages.upsert"))
    assert [d["duplicate"] for d in deliveries] == [False, True] and first == second


def test_chaos_reordering_changes_arrival_order_but_loses_nothing(
    make_sim: Callable[..., SimHandle], receiver: Receiver
) -> None:
    sim = make_sim(chaos=ChaosConfig(reorder_rate=1.0, reorder_max_s=0.3))
    with sim.client() as client:
        client.create_instance("ro", webhook=hook(receiver), qrcode=False)
    for n in range(12):
        sim.emit("ro", "messages.update", {"keyId": f"K{n}", "status": "READ"}, wait=False)
    got = wait_until(lambda: (found := receiver.events("messages.update")) and len(found) == 12 and found)
    order = [r.body["data"]["keyId"] for r in got]
    assert sorted(order) == sorted(f"K{n}" for n in range(12)) and order != [f"K{n}" for n in range(12)]


def test_webhooks_can_go_straight_to_an_asgi_app(make_sim: Callable[..., SimHandle]) -> None:
    inside = Receiver()  # never served: the simulator calls the app in process
    sim = make_sim(webhook_transport=httpx.ASGITransport(app=inside.app))
    with sim.client() as client:
        client.create_instance(
            "asgi",
            webhook=WebhookConfig(url="http://mirage.test/api/webhooks/evolution", secret=SECRET, jwt_key=JWT_KEY),
        )
    got = inside.wait_for("qrcode.updated", instance="asgi")[0]
    assert got.path == "/api/webhooks/evolution" and got.headers["x-webhook-secret"] == SECRET
