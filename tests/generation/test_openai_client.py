"""The real `openai` client against `mirage sim openai` over HTTP: answers, retries, every way to fall back offline."""

from __future__ import annotations

import io
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from mirage.crypto import fingerprint, keyring
from mirage.db.openai_access import llm_config
from mirage.engine.generation import LENGTH_BOUNDS, Composed, Line, LLMConfig, Step
from mirage.integrations.openai import compose
from mirage.integrations.openai_sim import OpenAISimHandle
from mirage.logs import configure_logging
from mirage.settings import Settings
from tests.generation.conftest import KEY
from tests.generation.helpers import persona, topics

ZE = persona("padaria-do-ze", "tio-ze")
FUTEBOL = topics("padaria-do-ze", "balcao-e-forno")["futebol"]


def config(sim: OpenAISimHandle, **kw: Any) -> LLMConfig:
    kw.setdefault("api_key", KEY)
    kw.setdefault("timeout_s", 2.0)
    return LLMConfig(base_url=sim.base_url, **kw)


def say(cfg: LLMConfig | None, step: Step = "comment", history: list[Line] | None = None, seed: int = 1) -> Composed:
    return compose(step, ZE, FUTEBOL, history or [], "morning", random.Random(seed), cfg)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from mirage.integrations.openai import client

    monkeypatch.setattr(client, "BASE_DELAY_S", 0.01)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Mirage's own log set-up (JSON lines, redaction) at DEBUG into a buffer, the openai client's loggers included."""
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    yield stream
    configure_logging("INFO", "json")
    for name in ("openai", "httpx2", "httpcore2"):
        logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.mark.parametrize("step", ["greeting", "comment", "question", "answer", "goodbye"])
def test_the_model_answers_in_character_with_the_tokens_it_used(openai_sim: OpenAISimHandle, step: Step) -> None:
    out = say(config(openai_sim, model="gpt-4o", temperature=0.4), step)
    assert out.source == "openai" and out.reasons == () and out.tokens > 0
    low, high = LENGTH_BOUNDS[step]
    assert low <= len(out.text) <= high
    request = openai_sim.requests()[-1]
    assert request["model"] == "gpt-4o" and request["temperature"] == 0.4 and request["authorized"]
    assert "Tio Zé" in request["messages"][0]["content"] and request["messages"][0]["role"] == "system"
    assert out.meta("futebol") == {"text_source": "openai", "tokens": out.tokens, "topic": "futebol"}


def test_a_rate_limit_is_retried_after_its_retry_after_and_then_answered(openai_sim: OpenAISimHandle) -> None:
    openai_sim.faults(rate_limit_next=1, retry_after_s=0.2)
    started = time.monotonic()
    out = say(config(openai_sim))
    assert out.source == "openai" and out.reasons == ()
    assert time.monotonic() - started >= 0.2
    assert len(openai_sim.requests()) == 2


def test_a_retry_after_longer_than_a_round_can_wait_falls_back_at_once(openai_sim: OpenAISimHandle) -> None:
    openai_sim.faults(rate_limit_next=1, retry_after_s=60)
    started = time.monotonic()
    out = say(config(openai_sim))
    assert out.source == "offline" and out.reasons == ("openai:http_429_retry_after_60s",)
    assert time.monotonic() - started < 2 and len(openai_sim.requests()) == 1


@pytest.mark.usefixtures("fast_backoff")
def test_repeated_server_errors_fall_back_to_the_offline_generator_after_bounded_retries(
    openai_sim: OpenAISimHandle,
) -> None:
    openai_sim.faults(error_next=10)
    out = say(config(openai_sim, max_retries=2))
    assert out.source == "offline" and out.reasons == ("openai:http_500",) and out.text
    assert len(openai_sim.requests()) == 3


@pytest.mark.usefixtures("fast_backoff")
def test_one_server_error_is_retried_and_answered(openai_sim: OpenAISimHandle) -> None:
    openai_sim.faults(error_next=1)
    assert say(config(openai_sim)).source == "openai"


def test_a_timeout_falls_back_to_the_offline_generator(openai_sim: OpenAISimHandle) -> None:
    openai_sim.faults(slow_next=5, slow_s=3)
    started = time.monotonic()
    out = say(config(openai_sim, timeout_s=0.3, max_retries=1))
    assert out.source == "offline" and out.reasons == ("openai:timeout",)
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize(("fault", "reason"), [("malformed_next", "malformed"), ("empty_next", "empty")])
def test_a_malformed_or_empty_answer_falls_back_to_the_offline_generator(
    openai_sim: OpenAISimHandle, fault: str, reason: str
) -> None:
    openai_sim.faults(**{fault: 1})
    out = say(config(openai_sim))
    assert out.source == "offline" and out.reasons == (f"openai:{reason}",)
    assert len(openai_sim.requests()) == 1  # not retried: the server answered, badly


def test_a_refused_key_falls_back_without_retrying(openai_sim: OpenAISimHandle) -> None:
    out = say(config(openai_sim, api_key="sk-wrong-0000000000000000000000"))
    assert out.source == "offline" and out.reasons == ("openai:http_401",)
    assert len(openai_sim.requests()) == 1


ESSAY = "Bom dia! " + "Vou te contar uma longa história sobre o jogo de domingo. " * 35


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("Olha que promoção: https://promo.example/pao", "link"),
        ("Me chama no (11) 99876-5432", "phone"),
        ("Manda um e-mail pra ze@padaria.com.br", "email"),
        ("Fala com o @juca_padeiro", "mention"),
        (ESSAY, "too_long"),
    ],
)
def test_a_bad_answer_is_retried_once_then_replaced_offline_and_the_reason_kept(
    openai_sim: OpenAISimHandle, bad: str, reason: str
) -> None:
    assert len(ESSAY) > 2000
    openai_sim.script(bad, bad)
    out = say(config(openai_sim))
    assert out.source == "offline" and out.text != bad
    assert out.reasons == (f"guard:{reason}", f"guard:{reason}")
    retry = openai_sim.requests()[1]["messages"][-1]["content"]
    assert f"recusada ({reason})" in retry


def test_a_bad_first_answer_and_a_good_retry_sends_the_retry(openai_sim: OpenAISimHandle) -> None:
    openai_sim.script("Veja www.padaria.com.br", "Hoje o pão saiu lindo")
    out = say(config(openai_sim))
    assert (out.text, out.source, out.reasons) == ("Hoje o pão saiu lindo", "openai", ("guard:link",))


def test_a_role_prefix_quotes_and_markdown_are_stripped_from_a_model_answer(openai_sim: OpenAISimHandle) -> None:
    openai_sim.script('Tio Zé: "**Bom dia**, meu querido!"')
    out = say(config(openai_sim), "greeting")
    assert (out.text, out.source) == ("Bom dia, meu querido!", "openai")


def test_an_exact_repeat_of_a_recent_message_is_never_sent_as_such(openai_sim: OpenAISimHandle) -> None:
    history = [Line("Opa, bom dia! Tudo certo?", mine=False), Line("Bom dia, meu querido!", mine=True)]
    openai_sim.script("Bom dia, meu querido!", "bom dia meu querido!!")
    out = say(config(openai_sim), "greeting", history)
    assert out.source == "offline" and out.reasons == ("guard:repeat", "guard:repeat")
    assert out.text not in {h.text for h in history}


def test_no_key_and_no_base_url_is_offline_without_a_request(openai_sim: OpenAISimHandle) -> None:
    out = say(None)
    assert out.source == "offline" and out.reasons == () and out.tokens == 0
    assert openai_sim.requests() == []


def test_a_base_url_without_a_key_reaches_an_open_compatible_server(
    make_openai_sim: Callable[..., OpenAISimHandle],
) -> None:
    open_sim = make_openai_sim(api_key=None)
    out = say(LLMConfig(base_url=open_sim.base_url))
    assert out.source == "openai" and len(open_sim.requests()) == 1


def _tenant_with_key(db: psycopg.Connection[Any], base_url: str | None, key: str | None) -> uuid.UUID:
    tid: uuid.UUID = db.execute(
        "insert into t_tenants (slug, name) values ('padaria', 'Padaria') returning id"
    ).fetchone()["id"]  # type: ignore[index]
    db.execute("insert into t_settings_tenant (tenant_id, openai_base_url) values (%s, %s)", (tid, base_url))
    if key is not None:
        sid = uuid.uuid4()
        enc = keyring().encrypt(key, table="t_tenant_secrets", row_id=sid, field="value")
        db.execute(
            "insert into t_tenant_secrets (id, tenant_id, name, value_enc, fingerprint)"
            " values (%s, %s, 'openai_api_key', %s, %s)",
            (sid, tid, enc, fingerprint(tid, "openai_api_key", key)),
        )
    db.commit()
    return tid


@pytest.fixture
def secret_keys(monkeypatch: pytest.MonkeyPatch) -> str:
    from mirage.crypto import generate_key
    from mirage.settings import get_settings

    key = generate_key()
    monkeypatch.setenv("MIRAGE_SECRET_KEYS", key)
    get_settings.cache_clear()
    return key


def test_the_tenants_encrypted_key_and_base_url_are_used(
    db: psycopg.Connection[Any], openai_sim: OpenAISimHandle, secret_keys: str
) -> None:
    tid = _tenant_with_key(db, openai_sim.base_url, KEY)
    settings = Settings.from_env({"MIRAGE_SECRET_KEYS": secret_keys})
    cfg = llm_config(db, tid, model="gpt-4o-mini", temperature=0.9, settings=settings)
    assert cfg is not None and cfg.base_url == openai_sim.base_url and KEY not in repr(cfg)
    out = say(cfg)
    assert out.source == "openai" and openai_sim.requests()[-1]["authorized"]


@pytest.mark.usefixtures("secret_keys")
def test_without_a_tenant_key_the_environment_key_and_url_are_used_and_without_either_none(
    db: psycopg.Connection[Any], openai_sim: OpenAISimHandle
) -> None:
    tid = _tenant_with_key(db, None, None)
    env = Settings.from_env({"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": openai_sim.base_url})
    cfg = llm_config(db, tid, model="gpt-4o-mini", temperature=0.8, settings=env)
    assert cfg is not None and cfg.api_key == KEY and say(cfg).source == "openai"
    assert llm_config(db, tid, model="gpt-4o-mini", temperature=0.8, settings=Settings.from_env({})) is None


@pytest.mark.usefixtures("fast_backoff")
def test_the_key_never_appears_in_logs_reasons_or_reprs(openai_sim: OpenAISimHandle, log_stream: io.StringIO) -> None:
    outs = [say(config(openai_sim))]
    openai_sim.faults(error_next=3)
    outs.append(say(config(openai_sim)))
    outs.append(say(config(openai_sim, api_key=KEY + "x")))
    openai_sim.faults(malformed_next=1)
    outs.append(say(config(openai_sim)))
    text = log_stream.getvalue()
    assert "openai request failed" in text and "http_500" in text  # the failures were logged...
    assert KEY not in text  # ...without the key
    assert all(KEY not in repr(o) and KEY not in " ".join(o.reasons) for o in outs)
    assert KEY not in repr(config(openai_sim))


def test_a_call_gives_up_within_two_request_timeouts_whatever_the_retries(openai_sim: OpenAISimHandle) -> None:
    openai_sim.faults(slow_next=10, slow_s=3)
    started = time.monotonic()
    out = say(config(openai_sim, timeout_s=0.4, max_retries=5))
    assert out.source == "offline" and out.reasons == ("openai:timeout",)
    assert time.monotonic() - started < 1.4 and len(openai_sim.requests()) <= 2


@pytest.mark.usefixtures("fast_backoff")
def test_an_endpoint_failing_call_after_call_is_left_alone_for_a_while_then_tried_again(
    openai_sim: OpenAISimHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirage.integrations.openai import client

    monkeypatch.setattr(client, "BREAKER_OPEN_S", 0.5)
    openai_sim.faults(error_next=1000)
    failed = [say(config(openai_sim, max_retries=0), seed=i) for i in range(client.BREAKER_FAILURES)]
    assert all(o.reasons == ("openai:http_500",) for o in failed) and len(openai_sim.requests()) == 3
    skipped = say(config(openai_sim, max_retries=0), seed=9)
    assert skipped.source == "offline" and skipped.reasons == ("openai:unavailable",) and skipped.text
    assert len(openai_sim.requests()) == 3  # the model was not asked
    time.sleep(0.7)
    openai_sim.faults(error_next=0)
    assert say(config(openai_sim, max_retries=0), seed=10).source == "openai"  # tried again, and closed
    openai_sim.faults(error_next=1)
    assert say(config(openai_sim, max_retries=0), seed=11).reasons == ("openai:http_500",)
    assert say(config(openai_sim, max_retries=0), seed=12).source == "openai"  # one failure does not open it


def test_a_refused_key_or_bad_answers_never_open_the_breaker(openai_sim: OpenAISimHandle) -> None:
    outs = [say(config(openai_sim, api_key=KEY + "x"), seed=i) for i in range(5)]
    assert all(o.reasons == ("openai:http_401",) for o in outs) and len(openai_sim.requests()) == 5
    openai_sim.faults(malformed_next=5)
    assert all(say(config(openai_sim), seed=i).reasons == ("openai:malformed",) for i in range(5))
    assert say(config(openai_sim)).source == "openai"


@pytest.mark.parametrize(
    "kw", [{"timeout_s": 15.5}, {"timeout_s": 0}, {"max_retries": 6}, {"max_retries": -1}], ids=lambda kw: str(kw)
)
def test_a_config_beyond_the_bounds_of_a_round_is_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be in"):
        LLMConfig(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["16", "0", "soon"])
def test_openai_timeout_s_beyond_15_seconds_is_refused_naming_the_variable(value: str) -> None:
    from mirage.errors import SettingsError

    with pytest.raises(SettingsError) as e:
        Settings.from_env({"OPENAI_TIMEOUT_S": value})
    assert str(e.value).startswith("environment variable OPENAI_TIMEOUT_S:")


@pytest.mark.parametrize("value", ["15", "0.5"])
def test_openai_timeout_s_reaches_the_tenants_model_config(
    db: psycopg.Connection[Any], value: str, openai_sim: OpenAISimHandle, secret_keys: str
) -> None:
    env = {"OPENAI_TIMEOUT_S": value, "OPENAI_BASE_URL": openai_sim.base_url, "MIRAGE_SECRET_KEYS": secret_keys}
    tid = _tenant_with_key(db, None, None)
    cfg = llm_config(db, tid, model="gpt-4o-mini", temperature=0.8, settings=Settings.from_env(env))
    assert cfg is not None and cfg.timeout_s == float(value)
