"""The simulator answers the real Evolution 2.3.6 request fixtures with their shapes (tests/fixtures/evolution)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from mirage.integrations.evolution_sim import SimConfig, SimHandle, run_in_thread, serve_in_thread
from tests.evolution.helpers import FIXTURES, Receiver, fixture, wait_until

OWNER, CUSTOMER = "5511912345678", "5521998765432"


def keys(value: Any) -> list[str]:
    return list(value) if isinstance(value, dict) else []


@pytest.fixture
def api(make_sim: Callable[..., SimHandle], receiver: Receiver) -> Iterator[tuple[SimHandle, httpx.Client, str]]:
    """A simulator whose webhooks all go to the receiver, an httpx client on it, and the fixture instance's token."""
    sim = make_sim(webhook_url_override=receiver.url + "/hook")
    http = httpx.Client(base_url=sim.url, headers={"apikey": sim.api_key}, timeout=10)
    created = http.post("/instance/create", json=fixture("api/create-instance.request.json"))
    assert created.status_code == 201, created.text
    yield sim, http, created.json()["hash"]
    http.close()


def test_create_instance_answers_201_with_the_fixture_shape(make_sim: Callable[..., SimHandle]) -> None:
    sim = make_sim(webhook_url_override="http://127.0.0.1:9/hook")
    with httpx.Client(base_url=sim.url, headers={"apikey": sim.api_key}) as http:
        resp = http.post("/instance/create", json=fixture("api/create-instance.request.json"))
    body, expected = resp.json(), fixture("api/create-instance.response.json")
    assert resp.status_code == 201
    assert keys(body) == keys(expected)
    for part in ("instance", "webhook", "settings", "qrcode"):
        assert keys(body[part]) == keys(expected[part]), part
    assert body["hash"] == "B6D711FC-DE4D-4FD5-9365-44120E713976"  # the token the request chose
    assert body["webhook"]["webhookHeaders"] == expected["webhook"]["webhookHeaders"]
    assert body["websocket"] == body["rabbitmq"] == body["nats"] == body["sqs"] == {}


@pytest.mark.parametrize(
    ("method", "path", "request_fixture", "status", "response_fixture", "exact"),
    [
        (
            "POST",
            "/webhook/set/acme-support",
            "api/webhook-set.request.json",
            201,
            "api/webhook-set.response.json",
            False,
        ),
        (
            "POST",
            "/chat/sendPresence/acme-support",
            "api/sendPresence.request.json",
            201,
            "api/sendPresence.response.json",
            True,
        ),
        (
            "POST",
            "/chat/markMessageAsRead/acme-support",
            "api/markMessageAsRead.request.json",
            201,
            "api/markMessageAsRead.response.json",
            True,
        ),
        (
            "POST",
            "/message/sendText/acme-support",
            "api/sendText.request.json",
            201,
            "api/sendText.response.json",
            False,
        ),
        ("GET", "/instance/connectionState/acme-support", None, 200, "api/connectionState.response.json", True),
        ("GET", "/instance/connect/acme-support", None, 200, "api/connect.response.open.json", True),
        ("DELETE", "/instance/logout/acme-support", None, 200, "api/logout.response.json", True),
        ("DELETE", "/instance/delete/acme-support", None, 200, "api/delete.response.json", True),
    ],
)
def test_routes_answer_like_the_fixtures(
    api: tuple[SimHandle, httpx.Client, str],
    method: str,
    path: str,
    request_fixture: str | None,
    status: int,
    response_fixture: str,
    exact: bool,
) -> None:
    sim, http, token = api
    sim.scan("acme-support", OWNER)
    resp = http.request(
        method, path, json=fixture(request_fixture) if request_fixture else None, headers={"apikey": token}
    )
    expected = fixture(response_fixture)
    assert resp.status_code == status, resp.text
    if exact:
        assert resp.json() == expected
    else:
        assert keys(resp.json()) == keys(expected)


def test_send_text_answers_the_message_key_and_context_shapes(api: tuple[SimHandle, httpx.Client, str]) -> None:
    sim, http, _ = api
    sim.scan("acme-support", OWNER)
    body = http.post("/message/sendText/acme-support", json=fixture("api/sendText.request.json")).json()
    expected = fixture("api/sendText.response.json")
    assert keys(body["key"]) == keys(expected["key"]) and body["key"]["remoteJid"] == expected["key"]["remoteJid"]
    assert set(expected["contextInfo"]) <= set(body["contextInfo"]) and body["message"] == expected["message"]
    assert body["contextInfo"]["stanzaId"] == "A5F0C1D2E3B4A59687C8D9E0F1A2B3C4"  # the quoted id


def test_connect_answers_the_qr_fixture_shape_and_count_zero_before_a_qr(make_sim: Callable[..., SimHandle]) -> None:
    sim = make_sim(webhook_url_override="http://127.0.0.1:9/hook")
    slow = make_sim(webhook_url_override="http://127.0.0.1:9/hook", qr_first_delay_s=30)
    request = {**fixture("api/create-instance.request.json"), "qrcode": False}
    for s in (sim, slow):
        with httpx.Client(base_url=s.url, headers={"apikey": s.api_key}) as http:
            assert http.post("/instance/create", json=request).status_code == 201
    qr = httpx.get(sim.url + "/instance/connect/acme-support", headers={"apikey": sim.api_key}).json()
    empty = httpx.get(slow.url + "/instance/connect/acme-support", headers={"apikey": slow.api_key}).json()
    assert keys(qr) == keys(fixture("api/connect.response.qr.json")) and qr["count"] == 1
    assert empty == fixture("api/connect.response.not-ready.json")


def test_fetch_instances_rows_have_the_fixture_keys(api: tuple[SimHandle, httpx.Client, str]) -> None:
    sim, http, _ = api
    sim.scan("acme-support", OWNER)
    [row] = http.get("/instance/fetchInstances").json()
    [expected] = fixture("api/fetchInstances.response.json")
    assert keys(row) == keys(expected)
    assert keys(row["Setting"]) == keys(expected["Setting"]) and keys(row["_count"]) == keys(expected["_count"])
    assert row["ownerJid"] == f"{OWNER}@s.whatsapp.net" and row["connectionStatus"] == "open"


def test_whatsapp_numbers_answers_the_fixture(api: tuple[SimHandle, httpx.Client, str]) -> None:
    sim, http, _ = api
    sim.scan("acme-support", OWNER)
    body = http.post("/chat/whatsappNumbers/acme-support", json=fixture("api/whatsappNumbers.request.json")).json()
    expected = fixture("api/whatsappNumbers.response.json")
    assert [(r["jid"], r["exists"], r["number"]) for r in body] == [
        (r["jid"], r["exists"], r["number"]) for r in expected
    ]
    assert [keys(r) for r in body] == [keys(r) for r in expected]


@pytest.mark.parametrize(
    ("path", "body", "apikey", "expected"),
    [
        (
            "/webhook/set/acme-support",
            {"enabled": True, "url": "http://x"},
            "global",
            "api/error.webhook-set-flat-body.json",
        ),
        (
            "/message/sendText/acme-support",
            {"number": "5521900000000", "text": "oi"},
            "global",
            "api/sendText.error.not-on-whatsapp.json",
        ),
        ("/message/sendText/acme-support", {"number": CUSTOMER, "text": "oi"}, "wrong", "api/error.unauthorized.json"),
    ],
)
def test_error_answers_match_the_fixtures(
    api: tuple[SimHandle, httpx.Client, str], path: str, body: dict[str, Any], apikey: str, expected: str
) -> None:
    sim, http, _ = api
    sim.scan("acme-support", OWNER)
    key = sim.api_key if apikey == "global" else "not-the-key"
    resp = http.post(path, json=body, headers={"apikey": key})
    assert resp.json() == fixture(expected) and resp.status_code == fixture(expected)["status"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"number": CUSTOMER, "presence": "composing"}, [['instance requires property "delay"']]),
        ({"presence": "composing", "delay": 1}, [['instance requires property "number"']]),
        (
            {"number": CUSTOMER, "presence": "typing", "delay": 1},
            [["presence is not one of enum values: unavailable,available,composing,recording,paused"]],
        ),
    ],
)
def test_validation_errors_are_400_with_nested_message_arrays(
    api: tuple[SimHandle, httpx.Client, str], body: dict[str, Any], message: list[list[str]]
) -> None:
    sim, http, _ = api
    sim.scan("acme-support", OWNER)
    resp = http.post("/chat/sendPresence/acme-support", json=body)
    assert resp.status_code == 400 and resp.json() == {
        "status": 400,
        "error": "Bad Request",
        "response": {"message": message},
    }


def test_create_without_webhook_events_is_refused_and_leaves_no_instance(make_sim: Callable[..., SimHandle]) -> None:
    sim = make_sim()
    request = {**fixture("api/create-instance.request.json"), "webhook": {"url": "http://127.0.0.1:9/x"}}
    with httpx.Client(base_url=sim.url, headers={"apikey": sim.api_key}) as http:
        resp = http.post("/instance/create", json=request)
        missing = http.get("/instance/connectionState/acme-support")
    assert resp.status_code == 400 and missing.status_code == 404


def test_root_welcome_shows_the_version(sim: SimHandle) -> None:
    body = httpx.get(sim.url + "/").json()
    assert (
        body["status"] == 200
        and body["version"] == "2.3.6"
        and body["message"].startswith("Welcome to the Evolution API")
    )


# -- webhook envelopes: one simulator run produces every fixture event; each must have the fixture's keys -----------


@pytest.fixture(scope="module")
def delivered() -> Iterator[list[dict[str, Any]]]:
    receiver = Receiver()
    server = serve_in_thread(receiver.app)
    receiver.url = server.url
    sim = run_in_thread(SimConfig(time_factor=0.01, seed=3, expose_token=True, read_after_s=0.5))
    http = httpx.Client(base_url=sim.url, headers={"apikey": sim.api_key}, timeout=10)
    request = fixture("api/create-instance.request.json")
    request["webhook"] = {**request["webhook"], "url": receiver.url + "/hook", "events": []}  # [] = every event
    token = http.post("/instance/create", json=request).json()["hash"]
    wait_until(lambda: receiver.events("qrcode.updated"))
    sim.scan("acme-support", OWNER)
    sent = http.post("/message/sendText/acme-support", json={"number": CUSTOMER, "text": "Oi!"}).json()
    sim.say(CUSTOMER, "acme-support", "Olá! Vocês abrem no sábado?")
    httpx.post(sim.url + "/sim/instances/acme-support/phone-send", json={"number": CUSTOMER, "text": "Respondi 👍"})
    wait_until(
        lambda: any(
            r.body["data"].get("keyId") == sent["key"]["id"] and r.body["data"]["status"] == "READ"
            for r in receiver.events("messages.update")
        )
    )
    http.delete("/instance/logout/acme-support", headers={"apikey": token})
    http.delete("/instance/delete/acme-support", headers={"apikey": token})
    unkeyed = {k: v for k, v in request.items() if k != "token"}  # `"token": null` is a 400, as in Evolution
    http.post("/instance/create", json={**unkeyed, "instanceName": "acme-pair", "number": OWNER})
    wait_until(
        lambda: any(r.body["data"].get("qrcode", {}).get("pairingCode") for r in receiver.events("qrcode.updated"))
    )
    wait_until(lambda: receiver.events("remove.instance"))
    yield [r.body for r in receiver.events()]
    http.close()
    sim.stop()
    server.stop()


def _pick(bodies: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The delivered body that plays the same part as fixture `name`."""
    expected = fixture(name)
    event, data = expected["event"], expected["data"]

    def same(body: dict[str, Any]) -> bool:
        if body["event"] != event:
            return False
        got = body["data"]
        if event == "connection.update":
            return bool(got["state"] == data["state"])
        if event == "messages.update":
            return bool(got["status"] == data["status"])
        if event == "messages.upsert":
            return bool(got["key"]["fromMe"] == data["key"]["fromMe"])
        if event == "qrcode.updated":
            return "qrcode" in got and bool(got["qrcode"]["pairingCode"]) == bool(data["qrcode"]["pairingCode"])
        return True

    return next(b for b in bodies if same(b))


WEBHOOK_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json"))


@pytest.mark.parametrize("name", WEBHOOK_FIXTURES)
def test_every_webhook_fixture_event_is_produced_with_the_same_envelope_and_data_keys(
    delivered: list[dict[str, Any]], name: str
) -> None:
    expected = fixture(name)
    body = _pick(delivered, name)
    assert set(body) == set(expected)
    assert set(keys(body["data"])) == set(keys(expected["data"]))
    if isinstance(expected["data"], dict) and isinstance(expected["data"].get("key"), dict):
        assert set(body["data"]["key"]) == set(expected["data"]["key"])
    if "qrcode" in keys(expected["data"]):
        assert set(body["data"]["qrcode"]) == set(expected["data"]["qrcode"])
    assert body["apikey"] is not None  # expose_token is on in this run, as in the fixtures
