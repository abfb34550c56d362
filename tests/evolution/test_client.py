"""The Evolution client against the simulator over real HTTP: every call, error answers, retries and timeouts."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable

import httpx
import pytest

from mirage.errors import PermanentError, TemporaryError
from mirage.integrations.evolution.client import EvolutionClient, RetryPolicy
from mirage.integrations.evolution.errors import EvolutionClientError, EvolutionServerError
from mirage.integrations.evolution.models import WEBHOOK_EVENTS, WebhookConfig
from mirage.integrations.evolution_sim import SimHandle

WEBHOOK = WebhookConfig(url="http://127.0.0.1:9/api/webhooks/evolution", secret="s" * 43, jwt_key="j" * 43)
PHONE_A, PHONE_B = "+5511912345678", "+5511987654321"


class Clock:
    """A fake clock that sleeping advances, so retry tests take no time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def fast_client(sim: SimHandle, clock: Clock, **kw: object) -> EvolutionClient:
    retry = kw.pop("retry", RetryPolicy(attempts=4, base_delay=0.5, max_delay=4.0, total_time=30.0))
    return sim.client(retry=retry, sleep=clock.sleep, clock=clock, rng=random.Random(1), **kw)  # type: ignore[arg-type]


def open_instance(sim: SimHandle, client: EvolutionClient, name: str, phone: str) -> str:
    token = client.create_instance(name, webhook=WEBHOOK).token
    sim.scan(name, phone)
    return token


def test_create_instance_sends_baileys_qrcode_and_nested_webhook_and_returns_token_and_qr(sim: SimHandle) -> None:
    with sim.client() as client:
        created = client.create_instance("acme-sales", webhook=WEBHOOK, token="T" * 36)
        hook = client.find_webhook("acme-sales", token=created.token)
    assert created.token == "T" * 36 and created.status == "connecting" and created.instance_id
    assert created.qr is not None and created.qr.count == 1 and created.qr.code.startswith("2@")
    assert created.qr.base64.startswith("data:image/png;base64,")
    assert base64.b64decode(created.qr.base64.split(",", 1)[1]).startswith(b"\x89PNG")
    assert created.qr.png().startswith(b"\x89PNG")
    assert hook["url"] == WEBHOOK.url and hook["enabled"] is True
    assert hook["headers"] == {"x-webhook-secret": "s" * 43, "jwt_key": "j" * 43}
    assert hook["events"] == list(WEBHOOK_EVENTS) and hook["webhookByEvents"] is False
    assert hook["webhookBase64"] is False
    instance = sim.world.instances["acme-sales"]
    assert instance.integration == "WHATSAPP-BAILEYS"


def test_connect_returns_the_qr_then_the_state_once_open(sim: SimHandle) -> None:
    with sim.client() as client:
        token = client.create_instance("i1", webhook=WEBHOOK, qrcode=False).token
        assert client.connection_state("i1", token=token) == "close"
        first = client.connect("i1", token=token)
        assert first.state == "connecting" and first.qr is not None and first.qr.pairing_code is None
        assert client.connect("i1", token=token).qr == first.qr  # connecting: the QR on screen, nothing new
        sim.scan("i1", PHONE_A)
        assert client.connection_state("i1", token=token) == "open"
        opened = client.connect("i1", token=token)
    assert opened.state == "open" and opened.qr is None


def test_connect_before_the_first_qr_answers_count_zero(make_sim: Callable[..., SimHandle]) -> None:
    sim = make_sim(qr_first_delay_s=30)
    with sim.client() as client:
        created = client.create_instance("slow", webhook=WEBHOOK)
        answer = client.connect("slow", token=created.token)
    assert created.qr is None and answer.qr is None and answer.count == 0 and answer.raw == {"count": 0}


def test_connect_with_a_number_shows_a_pairing_code(sim: SimHandle) -> None:
    with sim.client() as client:
        token = client.create_instance("p1", webhook=WEBHOOK, qrcode=False).token
        answer = client.connect("p1", token=token, number=PHONE_A)
    assert answer.qr is not None and answer.qr.pairing_code is not None and len(answer.qr.pairing_code) == 8


def test_logout_closes_and_a_second_logout_is_a_client_error(sim: SimHandle) -> None:
    with sim.client() as client:
        token = open_instance(sim, client, "l1", PHONE_A)
        assert client.logout("l1", token=token)["response"]["message"] == "Instance logged out"
        assert client.connection_state("l1", token=token) == "close"
        with pytest.raises(EvolutionClientError) as err:
            client.logout("l1", token=token)
    assert err.value.status == 400 and "is not connected" in str(err.value)


def test_delete_removes_the_instance_so_it_is_then_not_found(sim: SimHandle) -> None:
    with sim.client() as client:
        token = open_instance(sim, client, "d1", PHONE_A)
        assert client.delete_instance("d1", token=token)["response"]["message"] == "Instance deleted"
        with pytest.raises(EvolutionClientError) as err:
            client.connection_state("d1", token=token)
    assert err.value.is_not_found and 'The "d1" instance does not exist' in str(err.value)


def test_restart_of_a_closed_instance_is_an_error_even_with_http_200(sim: SimHandle) -> None:
    with sim.client() as client:
        token = client.create_instance("r1", webhook=WEBHOOK, qrcode=False).token
        with pytest.raises(EvolutionClientError) as err:
            client.restart("r1", token=token)
    assert err.value.status == 200 and "[object Object]" in str(err.value)
    assert isinstance(err.value, PermanentError)


def test_restart_of_an_open_instance_reconnects(sim: SimHandle) -> None:
    with sim.client() as client:
        token = open_instance(sim, client, "r2", PHONE_A)
        assert client.restart("r2", token=token).state == "connecting"


def test_set_webhook_sends_the_wrapped_body_with_by_events_and_base64(sim: SimHandle) -> None:
    hook = WebhookConfig(url="http://127.0.0.1:9/other", secret="x" * 40, jwt_key="y" * 40, by_events=True)
    with sim.client() as client:
        token = client.create_instance("w1", webhook=WEBHOOK, qrcode=False).token
        stored = client.set_webhook("w1", hook, token=token)
    assert stored["url"] == "http://127.0.0.1:9/other" and stored["webhookByEvents"] is True
    assert stored["headers"]["x-webhook-secret"] == "x" * 40 and stored["events"] == list(WEBHOOK_EVENTS)


def test_send_text_returns_the_message_key_and_reports_numbers_not_on_whatsapp(sim: SimHandle) -> None:
    with sim.client() as client:
        token = open_instance(sim, client, "s1", PHONE_A)
        sent = client.send_text("s1", "+55 (21) 99876-5432", "Oi! Tudo bem?", token=token, link_preview=False)
        with pytest.raises(EvolutionClientError) as err:
            client.send_text("s1", "5521900000000", "oi", token=token)
    assert sent.id.startswith("3EB0") and len(sent.id) == 22 and sent.status == "PENDING"
    assert sent.remote_jid == "5521998765432@s.whatsapp.net" and sent.raw["pushName"] == "Você"
    assert err.value.status == 400 and err.value.not_on_whatsapp == ["5521900000000"]


def test_send_text_waits_out_its_delay_even_past_the_base_timeout(make_sim: Callable[..., SimHandle]) -> None:
    sim = make_sim(time_factor=1.0)
    with sim.client(timeout=0.3) as client:
        token = open_instance(sim, client, "s2", PHONE_A)
        sent = client.send_text("s2", PHONE_B, "já vai", token=token, delay_ms=800, quoted_id="ABC")
    assert sent.id and sent.raw["contextInfo"]["stanzaId"] == "ABC"


def test_presence_calls_send_all_fields_and_reject_unknown_presences(sim: SimHandle) -> None:
    with sim.client() as client:
        token = open_instance(sim, client, "pr", PHONE_A)
        assert client.send_presence("pr", PHONE_B, "composing", 1200, token=token) == "composing"
        assert client.send_presence("pr", PHONE_B, "paused", 0, token=token) == "paused"
        assert client.set_presence("pr", "available", token=token) == {"presence": "available"}
        with pytest.raises(PermanentError):
            client.send_presence("pr", PHONE_B, "typing", 10, token=token)
        with pytest.raises(EvolutionClientError) as err:
            client.send_presence("pr", "5521900000000", "composing", 10, token=token)
    assert err.value.evolution_message == "[object Object]"


def test_mark_read_and_whatsapp_numbers(sim: SimHandle) -> None:
    with sim.client() as client:
        token = open_instance(sim, client, "mr", PHONE_A)
        read = client.mark_read("mr", [{"remoteJid": "5521998765432@s.whatsapp.net", "id": "X1"}], token=token)
        checks = client.whatsapp_numbers(
            "mr", ["5521998765432", "5521900000000", "120363025246125888@g.us"], token=token
        )
    assert read == {"message": "Read messages", "read": "success"}
    assert [(c.jid, c.exists) for c in checks] == [
        ("120363025246125888@g.us", True),
        ("5521998765432@s.whatsapp.net", True),
        ("5521900000000@s.whatsapp.net", False),
    ]


def test_fetch_instances_lists_all_with_the_global_key_and_only_its_own_with_a_token(sim: SimHandle) -> None:
    with sim.client() as client:
        token_a = open_instance(sim, client, "fa", PHONE_A)
        client.create_instance("fb", webhook=WEBHOOK, qrcode=False)
        everyone = client.fetch_instances()
        own = client.fetch_instances(token=token_a)
        one = client.fetch_instances(instance_name="fa")
    assert {i.name for i in everyone} == {"fa", "fb"}
    assert [i.name for i in own] == ["fa"] and own[0].phone == PHONE_A and own[0].state == "open"
    assert [i.name for i in one] == ["fa"] and one[0].token == token_a


@pytest.mark.parametrize(
    ("call", "status"),
    [
        (lambda c: c.connection_state("ghost", token="whatever"), 404),  # unknown instance: 404 before auth
        (lambda c: c.connection_state("known", token="wrong-token"), 401),
        (lambda c: c.create_instance("known", webhook=WEBHOOK, token="wrong"), 403),  # name in use before auth
        (lambda c: c.fetch_instances(token="not-a-token"), 401),
        (lambda c: c.fetch_instances(instance_name="ghost"), 404),
    ],
)
def test_guards_answer_like_evolution(sim: SimHandle, call: Callable[[EvolutionClient], object], status: int) -> None:
    with sim.client() as client:
        client.create_instance("known", webhook=WEBHOOK, qrcode=False)
        with pytest.raises(EvolutionClientError) as err:
            call(client)
    assert err.value.status == status and isinstance(err.value, PermanentError)


def test_create_with_an_instance_token_is_unauthorized(sim: SimHandle) -> None:
    with sim.client() as client:
        token = client.create_instance("c1", webhook=WEBHOOK, qrcode=False).token
    with sim.client(api_key=token) as as_instance, pytest.raises(EvolutionClientError) as err:
        as_instance.create_instance("c2", webhook=WEBHOOK)
    assert err.value.is_unauthorized


def test_error_messages_name_method_route_status_and_never_the_apikey(sim: SimHandle) -> None:
    with sim.client(api_key="global-secret-key-123") as client, pytest.raises(EvolutionClientError) as err:
        client.create_instance("x1", webhook=WEBHOOK)
    text = str(err.value)
    assert text == "Evolution POST /instance/create -> 401: Unauthorized"
    assert "global-secret-key-123" not in repr(err.value)


def test_a_5xx_is_retried_with_backoff_then_succeeds(sim: SimHandle) -> None:
    clock = Clock()
    with fast_client(sim, clock) as client:
        token = client.create_instance("rt", webhook=WEBHOOK, qrcode=False).token
        calls = len(sim.world.calls)
        sim.chaos(fail_next=2)
        assert client.connection_state("rt", token=token) == "close"
    assert len(sim.world.calls) - calls == 3
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.5 and 0 <= clock.sleeps[1] <= 1.0  # full jitter under the doubling cap


def test_retries_stop_after_the_attempt_limit_with_a_temporary_error(sim: SimHandle) -> None:
    clock = Clock()
    with fast_client(sim, clock) as client:
        token = client.create_instance("rt2", webhook=WEBHOOK, qrcode=False).token
        calls = len(sim.world.calls)
        sim.chaos(fail_next=50)
        with pytest.raises(EvolutionServerError) as err:
            client.connection_state("rt2", token=token)
    assert len(sim.world.calls) - calls == 4 and len(clock.sleeps) == 3
    assert err.value.status == 500 and isinstance(err.value, TemporaryError)
    assert "GET /instance/connectionState/rt2 -> 500: chaos: simulated internal error" in str(err.value)


def test_retries_stop_when_the_total_time_budget_would_be_exceeded(sim: SimHandle) -> None:
    clock = Clock()
    policy = RetryPolicy(attempts=100, base_delay=1.0, max_delay=1.0, total_time=3.0)
    with fast_client(sim, clock, retry=policy) as client:
        token = client.create_instance("rt3", webhook=WEBHOOK, qrcode=False).token
        sim.chaos(fail_next=1000)
        with pytest.raises(EvolutionServerError):
            client.connection_state("rt3", token=token)
    assert sum(clock.sleeps) <= 3.0 and len(clock.sleeps) < 100


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_4xx_is_not_retried(sim: SimHandle, status: int) -> None:
    clock = Clock()
    with fast_client(sim, clock) as client:
        token = client.create_instance("nr", webhook=WEBHOOK, qrcode=False).token
        calls = len(sim.world.calls)
        calls_for = {
            400: lambda: client.logout("nr", token=token),
            401: lambda: client.connection_state("nr", token="bad"),
            403: lambda: client.create_instance("nr", webhook=WEBHOOK),
            404: lambda: client.connection_state("nope", token=token),
        }
        with pytest.raises(EvolutionClientError) as err:
            calls_for[status]()
    assert err.value.status == status and clock.sleeps == [] and len(sim.world.calls) - calls == 1


def test_a_timeout_is_retried_for_reads_and_chained_as_the_cause(make_sim: Callable[..., SimHandle]) -> None:
    sim = make_sim()
    sim.chaos(timeout_s=1.0)
    clock = Clock()
    with fast_client(sim, clock, timeout=0.3) as client:
        token = client.create_instance("to", webhook=WEBHOOK, qrcode=False).token
        sim.chaos(hang_next=1)
        assert client.connection_state("to", token=token) == "close"
        sim.chaos(hang_next=5)
        with pytest.raises(EvolutionServerError) as err:
            client.connection_state("to", token=token)
    assert len(clock.sleeps) == 1 + 3
    assert err.value.status is None and "timed out" in str(err.value)
    assert isinstance(err.value.__cause__, httpx.ReadTimeout)


def test_send_text_is_not_retried_after_a_read_timeout(make_sim: Callable[..., SimHandle]) -> None:
    sim = make_sim()
    clock = Clock()
    with fast_client(sim, clock, timeout=0.3, delay_margin=0.2) as client:
        token = open_instance(sim, client, "st", PHONE_A)
        sim.chaos(timeout_s=1.0, hang_next=1)  # longer than the send timeout (0.3 s + 0.2 s margin)
        calls = len(sim.world.calls)
        with pytest.raises(EvolutionServerError):
            client.send_text("st", PHONE_B, "oi", token=token)
    assert len(sim.world.calls) - calls == 1 and clock.sleeps == []


class FailingAfterSending(httpx.BaseTransport):
    """Evolution behind a reverse proxy: every request reaches it, but sendText's answer is replaced by `status`
    (the proxy gave up waiting: 504; the connection broke: 502; Evolution failed after sending: 500)."""

    def __init__(self, status: int) -> None:
        self.status = status
        self._upstream = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._upstream.handle_request(request)
        if "/message/sendText/" not in request.url.path:
            return response
        response.read()
        response.close()
        return httpx.Response(self.status, json={"status": self.status, "error": "upstream"})

    def close(self) -> None:
        self._upstream.close()


@pytest.mark.parametrize("status", [500, 502, 504])
def test_send_text_is_not_retried_after_a_5xx_which_may_come_after_the_send(sim: SimHandle, status: int) -> None:
    clock = Clock()
    with fast_client(sim, clock, transport=FailingAfterSending(status)) as client:
        token = open_instance(sim, client, "s5", PHONE_A)
        calls = len(sim.world.calls)
        with pytest.raises(EvolutionServerError) as err:
            client.send_text("s5", PHONE_B, "oi, uma vez só", token=token)
    assert err.value.status == status
    assert len(sim.world.calls) - calls == 1 and clock.sleeps == []  # sent once; the send job decides what next


def test_an_unreachable_server_is_a_temporary_error() -> None:
    clock = Clock()
    client = EvolutionClient(
        "http://127.0.0.1:9", "k", retry=RetryPolicy(attempts=2), sleep=clock.sleep, clock=clock, rng=random.Random(0)
    )
    with client, pytest.raises(EvolutionServerError) as err:
        client.welcome()
    assert "cannot reach Evolution" in str(err.value) and isinstance(err.value.__cause__, httpx.ConnectError)


def test_welcome_reports_the_version_for_doctor(sim: SimHandle) -> None:
    with sim.client() as client:
        assert client.welcome()["version"] == "2.3.6"
