"""The simulator refuses what Evolution 2.3.6 refuses, in its words, and the client never sends such a body.

Real: the simulator over HTTP (uvicorn), the real EvolutionClient. The expected messages follow Evolution's
`RouterBroker.dataValidate` (Node `jsonschema`: a keyword's description, else the path without `instance.`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from mirage.config.outreach import DEFAULT_OPTOUT_KEYWORDS
from mirage.doctor import Level, check_evolution
from mirage.engine.optout import detect
from mirage.integrations.evolution import schemas
from mirage.integrations.evolution.client import NO_RETRY
from mirage.integrations.evolution.errors import EvolutionCorsError, EvolutionRequestError
from mirage.integrations.evolution.models import WebhookConfig
from mirage.integrations.evolution_sim import HumanConfig, SimConfig, SimHandle, run_in_thread
from mirage.integrations.evolution_sim.humans import is_optout
from mirage.settings import Settings
from tests.evolution.helpers import wait_until

OWNER, CUSTOMER, OTHER = "5511912345678", "5521998765432", "5521988887777"
NAME = "acme-support"
WEBHOOK = WebhookConfig(url="http://127.0.0.1:9/api/webhooks/evolution", secret="s" * 43, jwt_key="j" * 43)
KEY = {"remoteJid": f"{CUSTOMER}@s.whatsapp.net", "fromMe": False, "id": "3EB0A1"}
HOOK = {"enabled": True, "url": "http://127.0.0.1:9/hook", "events": ["MESSAGES_UPSERT"]}


def refused(*messages: str) -> dict[str, Any]:
    return {"status": 400, "error": "Bad Request", "response": {"message": [list(messages)]}}


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[SimHandle, httpx.Client]]:
    """One simulator with an open instance `acme-support`; refused requests change nothing, so tests share it."""
    sim = run_in_thread(SimConfig(time_factor=0.01, seed=5, webhook_url_override="http://127.0.0.1:9/hook"))
    http = httpx.Client(base_url=sim.url, headers={"apikey": sim.api_key}, timeout=10)
    with sim.client() as client:
        client.create_instance(NAME, webhook=WEBHOOK)
    sim.scan(NAME, OWNER)
    yield sim, http
    http.close()
    sim.stop()


BAD_BODIES = [
    ("/message/sendText", {"number": int(CUSTOMER), "text": "oi"}, refused("Invalid format")),
    ("/message/sendText", {"number": CUSTOMER, "text": "oi", "delay": 1.5}, refused("Enter a value in milliseconds")),
    (
        "/message/sendText",
        {"number": CUSTOMER, "text": "oi", "linkPreview": "false"},
        refused("linkPreview is not of a type(s) boolean"),
    ),
    (
        "/message/sendText",
        {"number": CUSTOMER, "text": "oi", "mentioned": []},
        refused("mentioned does not meet minimum length of 1"),
    ),
    (
        "/message/sendText",
        {"number": CUSTOMER, "text": "oi", "mentioned": [OTHER, OTHER]},
        refused("mentioned contains duplicate item"),
    ),
    (
        "/message/sendText",
        {"number": CUSTOMER, "text": "oi", "mentioned": ["@ana"]},
        refused('"mentioned" must be an array of numeric strings'),
    ),
    ("/message/sendText", {"number": CUSTOMER}, refused('instance requires property "text"')),
    (
        "/message/sendText",
        {"number": CUSTOMER, "text": "oi", "quoted": {"key": {"fromMe": True}}},
        refused('quoted.key requires property "id"'),
    ),
    (
        "/message/sendText",
        [CUSTOMER, "oi"],
        refused('instance requires property "number"', 'instance requires property "text"'),
    ),
    ("/chat/markMessageAsRead", {"readMessages": []}, refused("readMessages does not meet minimum length of 1")),
    ("/chat/markMessageAsRead", {"readMessages": [KEY, dict(KEY)]}, refused("readMessages contains duplicate item")),
    (
        "/chat/markMessageAsRead",
        {"readMessages": [{"id": "3EB0A1", "remoteJid": KEY["remoteJid"]}]},
        refused('readMessages[0] requires property "fromMe"'),
    ),
    ("/chat/markMessageAsRead", {}, refused('instance requires property "readMessages"')),
    (
        "/chat/sendPresence",
        {"number": CUSTOMER, "presence": "composing", "delay": "1200"},
        refused("delay is not of a type(s) number"),
    ),
    (
        "/instance/setPresence",
        {"presence": "typing"},
        refused("presence is not one of enum values: unavailable,available,composing,recording,paused"),
    ),
    ("/webhook/set", {"webhook": {**HOOK, "enabled": "true"}}, refused("webhook.enabled is not of a type(s) boolean")),
    (
        "/webhook/set",
        {"webhook": {**HOOK, "events": ["MESSAGES_UPSERT", "NEW_THING"]}},
        refused("webhook.events[1] is not one of enum values: " + ",".join(schemas.EVENTS)),
    ),
    ("/webhook/set", {"webhook": {"enabled": True, "url": ""}}, refused('The "url" cannot be empty')),
    ("/webhook/set", HOOK, refused('instance requires property "webhook"')),
    ("/instance/create", {"instanceName": "x", "qrcode": "true"}, refused("qrcode is not of a type(s) boolean")),
    ("/instance/create", {"instanceName": "x", "token": 123}, refused("token is not of a type(s) string")),
    (
        "/instance/create",
        {"instanceName": "x", "number": "+55 11 91234-5678"},
        refused('number does not match pattern "^\\\\d+[\\\\.@\\\\w-]+"'),
    ),
    ("/instance/create", {"instanceName": ""}, refused('The "instanceName" cannot be empty')),
    # whatsappNumbers answers its own errors: the thrown object without `response`, or `{}` from the controller
    (
        "/chat/whatsappNumbers",
        {"numbers": []},
        {"status": 400, "error": "Bad Request", "message": [["numbers does not meet minimum length of 1"]]},
    ),
    (
        "/chat/whatsappNumbers",
        {"numbers": [CUSTOMER, CUSTOMER]},
        {"status": 400, "error": "Bad Request", "message": [["numbers contains duplicate item"]]},
    ),
    (
        "/chat/whatsappNumbers",
        {"numbers": [int(CUSTOMER)]},
        {"status": 400, "error": "Bad Request", "message": [['"numbers" must be an array of numeric strings']]},
    ),
    ("/chat/whatsappNumbers", {}, {}),
]


@pytest.mark.parametrize(
    ("route", "body", "expected"), BAD_BODIES, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(BAD_BODIES)]
)
def test_a_body_evolution_refuses_is_a_400_in_evolutions_envelope(
    live: tuple[SimHandle, httpx.Client], route: str, body: Any, expected: dict[str, Any]
) -> None:
    sim, http = live
    path = route if route == "/instance/create" else f"{route}/{NAME}"
    resp = http.post(path, json=body)
    assert (resp.status_code, resp.json()) == (400, expected)
    assert sim.world.instances[NAME].state == "open" and "x" not in sim.world.instances


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/message/sendText", {"number": CUSTOMER, "text": "oi", "delay": 1200.0, "linkPreview": False}),
        ("/message/sendText", {"number": CUSTOMER, "text": "oi", "mentioned": [OTHER], "number_extra": None}),
        ("/chat/sendPresence", {"number": CUSTOMER, "presence": "composing", "delay": 1.5}),
        ("/chat/markMessageAsRead", {"readMessages": [KEY, "not-a-key"]}),  # items have no type: skipped
        ("/webhook/set", {"webhook": {**HOOK, "events": []}}),
    ],
)
def test_a_body_evolution_accepts_is_accepted(live: tuple[SimHandle, httpx.Client], route: str, body: Any) -> None:
    _, http = live
    resp = http.post(f"{route}/{NAME}", json=body)
    assert resp.status_code == 201, resp.text


def test_bad_json_is_a_400_before_any_guard_on_evolution_routes_and_on_sim_routes(
    live: tuple[SimHandle, httpx.Client],
) -> None:
    sim, http = live
    unknown = http.post(
        "/message/sendText/no-such-instance", content=b'{"number": ', headers={"content-type": "application/json"}
    )
    scalar = http.post(f"/message/sendText/{NAME}", content=b'"oi"', headers={"content-type": "application/json"})
    control = httpx.post(f"{sim.url}/sim/instances/{NAME}/scan", content=b"{nope", timeout=10)
    listed = httpx.post(f"{sim.url}/sim/instances/{NAME}/disconnect", json=[401], timeout=10)
    assert unknown.status_code == 400 and unknown.json()["error"] == "Internal Server Error"
    assert "in JSON at position" in unknown.json()["response"]["message"]
    assert scalar.status_code == 400 and scalar.json()["response"]["message"].startswith("Unexpected token")
    assert control.status_code == 400 and "in JSON at position" in control.json()["error"]
    assert listed.status_code == 400 and listed.json() == {"error": "the body must be a JSON object"}
    assert sim.world.instances[NAME].state == "open"  # neither the scan nor the disconnect went ahead


def refused_instance(make_sim: Callable[..., SimHandle]) -> tuple[SimHandle, httpx.Client, str]:
    sim = make_sim(qr_limit=1, qr_interval_s=0.05, refused_hold_s=30, webhook_url_override="http://127.0.0.1:9/h")
    with sim.client() as client:
        token = client.create_instance(NAME, webhook=WEBHOOK).token
    http = httpx.Client(base_url=sim.url, headers={"apikey": token}, timeout=10)
    wait_until(lambda: http.get(f"/instance/connectionState/{NAME}").json()["instance"]["state"] == "refused")
    return sim, http, token


def test_restart_of_a_refused_instance_answers_an_empty_200(make_sim: Callable[..., SimHandle]) -> None:
    sim, http, token = refused_instance(make_sim)
    resp = http.post(f"/instance/restart/{NAME}")
    http.close()
    assert (resp.status_code, resp.content) == (200, b"")
    assert sim.world.instances[NAME].state == "refused"
    with sim.client() as client:
        assert client.restart(NAME, token=token).state is None  # the client takes the empty answer


def test_logout_of_a_refused_instance_goes_ahead(make_sim: Callable[..., SimHandle]) -> None:
    sim, http, _ = refused_instance(make_sim)
    resp = http.delete(f"/instance/logout/{NAME}")
    state = http.get(f"/instance/connectionState/{NAME}").json()["instance"]["state"]
    http.close()
    assert resp.status_code == 200 and resp.json()["response"] == {"message": "Instance logged out"}
    assert state == "close" and sim.deliveries(NAME, "logout.instance")


# -- the client: every body it sends is one Evolution accepts ------------------------------------------------------

ROUTE_SCHEMAS = {
    "/instance/create": schemas.CREATE_INSTANCE,
    "/instance/setPresence/": schemas.SET_PRESENCE,
    "/webhook/set/": schemas.SET_WEBHOOK,
    "/message/sendText/": schemas.SEND_TEXT,
    "/chat/sendPresence/": schemas.SEND_PRESENCE,
    "/chat/markMessageAsRead/": schemas.MARK_READ,
    "/chat/whatsappNumbers/": schemas.WHATSAPP_NUMBERS,
}


class Recorder(httpx.HTTPTransport):
    """A real HTTP transport that keeps every JSON body it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.content:
            self.sent.append((request.url.path, json.loads(request.content)))
        return super().handle_request(request)


def test_every_body_the_client_sends_passes_evolutions_schemas(make_sim: Callable[..., SimHandle]) -> None:
    sim = make_sim(webhook_url_override="http://127.0.0.1:9/hook")
    recorder = Recorder()
    with sim.client(transport=recorder) as client:
        token = client.create_instance(NAME, webhook=WEBHOOK, token="T" * 36, number="+55 (11) 91234-5678").token
        sim.scan(NAME, OWNER)
        client.create_instance("acme-bare", webhook=WEBHOOK, qrcode=False)
        client.set_webhook(NAME, WEBHOOK, token=token)
        client.set_webhook(NAME, WEBHOOK, token=token, enabled=False)
        client.set_presence(NAME, "available", token=token)
        sent = client.send_text(
            NAME,
            "+55 21 99876-5432",
            "Oi!",
            token=token,
            delay_ms=10,
            link_preview=False,
            mentions_everyone=False,
            mentioned=["+55 21 98888-7777", "5521988887777"],
        )
        client.send_text(NAME, CUSTOMER, "De novo", token=token, quoted_id=sent.id, quoted_text="Oi!")
        client.send_presence(NAME, CUSTOMER, "composing", 10, token=token)
        client.mark_read(NAME, [KEY, dict(KEY), {**KEY, "id": "3EB0A2"}], token=token)
        checks = client.whatsapp_numbers(NAME, ["+55 21 99876-5432", CUSTOMER, OTHER], token=token)
    routes = {path.rsplit("/", 1)[0] + "/" if path.count("/") > 2 else path for path, _ in recorder.sent}
    assert routes == set(ROUTE_SCHEMAS)
    for path, body in recorder.sent:
        schema = next(s for prefix, s in ROUTE_SCHEMAS.items() if path.startswith(prefix))
        assert schemas.problems(body, schema) == [], (path, body)
    by_path = {path.split("/")[2]: body for path, body in recorder.sent}
    assert by_path["sendText"]["number"] == CUSTOMER  # the last sendText
    assert by_path["markMessageAsRead"]["readMessages"] == [KEY, {**KEY, "id": "3EB0A2"}]  # each key once
    assert by_path["whatsappNumbers"]["numbers"] == [CUSTOMER, OTHER]  # each number once, first spelling's place
    assert [c.number for c in checks] == [CUSTOMER, OTHER]


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda c: c.whatsapp_numbers(NAME, []), "no numbers to check"),
        (lambda c: c.whatsapp_numbers(NAME, ["+55", "abc"]), "numbers 'abc' is not a phone number"),
        (lambda c: c.mark_read(NAME, []), "no message keys to mark as read"),
        (lambda c: c.send_text(NAME, "ana", "oi"), "number 'ana' is not a phone number"),
        (lambda c: c.send_text(NAME, CUSTOMER, "   "), "text must not be blank"),
        (lambda c: c.send_text(NAME, CUSTOMER, "oi", mentioned=["@ana"]), "mentioned '@ana' is not a phone number"),
        (lambda c: c.send_presence(NAME, "", "composing", 10), "number '' is not a phone number"),
        (lambda c: c.create_instance(" ", webhook=WEBHOOK), "instanceName must not be empty"),
        (lambda c: c.create_instance("x", webhook=WEBHOOK, number="+"), "number '+' is not a phone number"),
        (lambda c: c.create_instance("x", webhook=WEBHOOK, qrcode="true"), "qrcode is not of a type(s) boolean"),
        (lambda c: c.send_text(NAME, CUSTOMER, "oi", delay_ms=1.5, link_preview="no"), "linkPreview is not of"),
    ],
)
def test_the_client_refuses_a_body_evolution_would_refuse_before_sending_it(
    sim: SimHandle, call: Callable[[Any], Any], problem: str
) -> None:
    with sim.client() as client, pytest.raises(EvolutionRequestError) as caught:
        call(client)
    assert problem in str(caught.value) and caught.value.problems
    assert sim.world.calls == []  # nothing reached the simulator


# -- CORS_ORIGIN: a 500 that is a setting, not an outage --------------------------------------------------------------


def test_a_cors_origin_server_refuses_origin_less_requests_and_the_client_does_not_retry(
    make_sim: Callable[..., SimHandle],
) -> None:
    sim = make_sim(cors_origins=("https://manager.example",))
    sleeps: list[float] = []
    with sim.client(sleep=sleeps.append, rng=random.Random(1)) as client, pytest.raises(EvolutionCorsError) as caught:
        client.fetch_instances()
    plain = httpx.get(sim.url + "/", timeout=10)
    allowed = httpx.get(sim.url + "/", headers={"origin": "https://manager.example"}, timeout=10)
    assert plain.status_code == 500
    assert plain.json() == {
        "status": 500,
        "error": "Internal Server Error",
        "response": {"message": "Not allowed by CORS"},
    }
    assert allowed.status_code == 200 and sleeps == []
    assert "CORS_ORIGIN" in str(caught.value) and caught.value.status == 500


def test_doctor_names_cors_origin_when_evolution_answers_not_allowed_by_cors(
    make_sim: Callable[..., SimHandle],
) -> None:
    strict, open_ = make_sim(cors_origins=("https://manager.example",)), make_sim(cors_origins=("*",))
    bad = check_evolution(Settings(evolution_base_url=strict.url))
    good = check_evolution(Settings(evolution_base_url=open_.url))
    assert bad.level is Level.FAIL and "CORS_ORIGIN" in bad.summary and "Origin" in bad.summary
    assert good.level is Level.OK and "2.3.6" in good.summary


def test_the_client_fails_once_on_a_cors_refusal_even_without_retries(make_sim: Callable[..., SimHandle]) -> None:
    sim = make_sim(cors_origins=("https://manager.example",))
    with sim.client(retry=NO_RETRY) as client, pytest.raises(EvolutionCorsError):
        client.welcome()


# -- simulated people opt out by the rule Mirage detects opt-outs with ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "opts_out"),
    [
        ("nao quero", True),  # no accent: Mirage's detector matches, the old substring rule did not
        ("SAIR!", True),
        ("Não quero mais receber, obrigado", True),
        ("Stopped by the store, talk later", False),  # a word that only contains "stop"
        ("Pararam de vender isso?", False),
        ("Oi! Tudo bem?", False),
    ],
)
def test_a_simulated_person_opts_out_exactly_when_mirage_would_detect_it(text: str, opts_out: bool) -> None:
    detected = detect(text, DEFAULT_OPTOUT_KEYWORDS).verdict == "optout"
    assert is_optout(text, HumanConfig()) is detected is opts_out
