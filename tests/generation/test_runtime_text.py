"""Rounds write their text with compose(), end to end: a round driven against the Evolution simulator sends the
text of the tenant's model (the OpenAI simulator over loopback HTTP, through the real `openai` client, with the
tenant's encrypted key and base_url), with its tokens in meta; when the model fails (5xx, timeouts) the round
still completes with offline text and the reason recorded; with no model the offline generator writes it.
public.text_usage sums the tokens per tenant per local day.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest

from mirage.crypto import fingerprint, keyring
from mirage.engine.generation import LENGTH_BOUNDS
from mirage.integrations.openai_sim import OpenAISimHandle
from mirage.settings import get_settings
from tests.generation.conftest import KEY
from tests.runtime.conftest import Harness

# The model's answers for a round of two exchanges: greeting, question, answer, goodbye.
SCRIPT = (
    "Bom dia, compadre! Tudo em paz por aí?",
    "E o jogo de quarta, vai assistir com a turma?",
    "Vou sim, não perco por nada kkkk",
    "Abraço, fica com Deus!",
)
KINDS = ["greeting", "question", "answer", "goodbye"]
MONDAY = date(2026, 12, 7)  # the harness's day (08:00 in São Paulo)


def give_the_tenant_a_model(h: Harness, sim: OpenAISimHandle, key: str = KEY) -> None:
    """openai.base_url in t_settings_tenant and the key encrypted in t_tenant_secrets, as `mirage apply` stores them."""
    h.db.execute("update t_settings_tenant set openai_base_url = %s where tenant_id = %s", (sim.base_url, h.tenant_id))
    sid = uuid.uuid4()
    enc = keyring().encrypt(key, table="t_tenant_secrets", row_id=sid, field="value")
    h.db.execute(
        "insert into t_tenant_secrets (id, tenant_id, name, value_enc, fingerprint)"
        " values (%s, %s, 'openai_api_key', %s, %s)",
        (sid, h.tenant_id, enc, fingerprint(h.tenant_id, "openai_api_key", key)),
    )
    h.db.commit()


def run_one_round(h: Harness) -> list[dict[str, Any]]:
    """Tick once, run the round to its end in virtual time; the round's sent messages in step order."""
    assert h.tick()["created"] == 1
    h.run_until(h.clock.now() + timedelta(minutes=15), tick_every=timedelta(minutes=30))
    rounds = h.rows("select status::text, abort_reason from t_rounds")
    assert [r["status"] for r in rounds] == ["done"], rounds
    sent = h.rows(
        "select body, status::text, meta from t_messages where direction = 'out' and idempotency_key is not null "
        "order by (meta->>'step')::int"
    )
    assert [m["meta"]["kind"] for m in sent] == KINDS
    assert all(m["status"] in ("sent", "delivered", "read") for m in sent)
    return sent


def usage(h: Harness) -> list[dict[str, Any]]:
    return h.rows(
        "select day, messages, openai_messages, offline_messages, fallbacks, tokens from public.text_usage "
        "where tenant_id = %s",
        h.tenant_id,
    )


def test_a_round_sends_the_models_text_with_its_tokens_in_meta(
    make_harness: Callable[..., Harness], openai_sim: OpenAISimHandle
) -> None:
    h = make_harness(exchanges=(2, 2))
    give_the_tenant_a_model(h, openai_sim)
    h.db.execute("update t_conversations set openai_model = 'gpt-4.1-mini', temperature = 0.35")  # its own model
    h.db.commit()
    openai_sim.script(*SCRIPT)
    sent = run_one_round(h)
    assert [m["body"] for m in sent] == list(SCRIPT)
    assert sorted(m.text for m in h.sim.world.messages.values()) == sorted(SCRIPT)  # what Evolution was asked
    for m in sent:
        assert m["meta"]["text_source"] == "openai" and m["meta"]["model"] == "gpt-4.1-mini", m["meta"]
        assert m["meta"]["tokens"] > 0 and "text_reasons" not in m["meta"]
        assert m["meta"]["topic"] == "futebol"
    asked = openai_sim.requests()
    assert len(asked) == 4
    assert all(r["authorized"] and r["model"] == "gpt-4.1-mini" and r["temperature"] == 0.35 for r in asked)
    for i, request in enumerate(asked[1:], start=1):  # each step's prompt holds the conversation so far
        prompt = "\n".join(str(m["content"]) for m in request["messages"])
        assert all(said in prompt for said in SCRIPT[:i]), (i, prompt)
    tokens = sum(m["meta"]["tokens"] for m in sent)
    assert usage(h) == [
        {"day": MONDAY, "messages": 4, "openai_messages": 4, "offline_messages": 0, "fallbacks": 0, "tokens": tokens}
    ]


@pytest.mark.parametrize(
    ("faults", "reason"),
    [
        ({"error_next": 1000}, "openai:http_500"),
        ({"slow_next": 1000, "slow_s": 3.0}, "openai:timeout"),
    ],
    ids=["server-errors", "timeouts"],
)
def test_when_the_model_fails_the_round_completes_with_offline_text_and_the_reason(
    make_harness: Callable[..., Harness],
    make_openai_sim: Callable[..., OpenAISimHandle],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    faults: dict[str, float],
    reason: str,
) -> None:
    from mirage.integrations.openai import client

    monkeypatch.setattr(client, "BASE_DELAY_S", 0.01)
    monkeypatch.setenv("OPENAI_TIMEOUT_S", "0.3")
    get_settings.cache_clear()
    sim = make_openai_sim(**faults)
    h = make_harness(exchanges=(2, 2))
    give_the_tenant_a_model(h, sim)
    sent = run_one_round(h)
    for m in sent:
        assert m["meta"]["text_source"] == "offline" and m["meta"]["tokens"] == 0, m["meta"]
        assert "model" not in m["meta"]
        low, high = LENGTH_BOUNDS[m["meta"]["kind"]]
        assert low <= len(m["body"]) <= high
    # three steps asked the model and met the failure; then the breaker sent the last step offline at once
    assert [m["meta"]["text_reasons"] for m in sent] == [[reason]] * 3 + [["openai:unavailable"]]
    assert len({m["body"] for m in sent}) == 4
    assert 3 <= len(sim.requests()) <= 9  # each failed call: at most 1 + 2 retries, fewer when timeouts ran out
    assert KEY not in caplog.text and all(KEY not in str(m) for m in sent)
    assert "openai request failed" in caplog.text  # the failures were logged, without the key
    assert usage(h) == [
        {"day": MONDAY, "messages": 4, "openai_messages": 0, "offline_messages": 4, "fallbacks": 4, "tokens": 0}
    ]


def test_model_answers_that_break_a_guard_never_reach_evolution_as_such(
    make_harness: Callable[..., Harness], openai_sim: OpenAISimHandle
) -> None:
    h = make_harness(exchanges=(2, 2))
    give_the_tenant_a_model(h, openai_sim)
    essay = "Rapaz, deixa eu te contar uma história comprida sobre o jogo de quarta. " * 28  # ~2,000 characters
    openai_sim.script(
        "Bom dia! Olha a promoção em www.loja.com.br",  # greeting: a link, refused...
        "Assistente: **Bom dia, compadre!**",  # ...the retry's role prefix and markdown are cleaned away
        essay,  # question: an essay, refused...
        "Bom dia, compadre!",  # ...and the retry repeats the greeting: offline text instead
        "Me liga no +55 11 91234-5678",  # answer: a phone number, refused...
        "Vou sim, não perco por nada kkkk",  # ...the retry is fine
        "Abraço, fica com Deus!",  # goodbye: fine at once
    )
    sent = run_one_round(h)
    bodies = [m["body"] for m in sent]
    assert bodies[0] == "Bom dia, compadre!" and bodies[2:] == ["Vou sim, não perco por nada kkkk", SCRIPT[3]]
    assert bodies[1] not in (essay, "Bom dia, compadre!") and len(bodies[1]) <= 200
    assert [m["meta"]["text_source"] for m in sent] == ["openai", "offline", "openai", "openai"]
    assert [m["meta"].get("text_reasons") for m in sent] == [
        ["guard:link"],
        ["guard:too_long", "guard:repeat"],
        ["guard:phone"],
        None,
    ]
    assert all(m["meta"]["tokens"] > 0 for m in sent)  # refused answers cost tokens too
    evolution = [m.text for m in h.sim.world.messages.values()]
    assert sorted(evolution) == sorted(bodies)
    assert not any(bad in text for text in evolution for bad in ("www.", "91234", "**", "Assistente", essay[:60]))


def test_without_a_model_the_offline_generator_writes_every_step(
    make_harness: Callable[..., Harness], openai_sim: OpenAISimHandle
) -> None:
    h = make_harness(exchanges=(2, 2))
    sent = run_one_round(h)
    assert all(m["meta"]["text_source"] == "offline" and m["meta"]["tokens"] == 0 for m in sent)
    assert all("text_reasons" not in m["meta"] for m in sent)
    assert openai_sim.requests() == []  # a simulator was running, but nothing pointed the tenant at it
    assert usage(h)[0]["offline_messages"] == 4 and usage(h)[0]["fallbacks"] == 0


def test_a_retried_step_asks_the_model_nothing_more(
    make_harness: Callable[..., Harness], openai_sim: OpenAISimHandle
) -> None:
    from mirage.jobs.rounds import advance_round

    h = make_harness(exchanges=(2, 2))
    give_the_tenant_a_model(h, openai_sim)
    assert h.tick()["created"] == 1
    h.work()  # the round's first step: its greeting written by the model, its send scheduled (not yet due)
    assert len(openai_sim.requests()) == 1
    round_id = h.rows("select id::text from t_rounds")[0]["id"]
    assert advance_round(round_id) == "step 0 queued"  # the same job again, as RQ would retry it
    assert len(openai_sim.requests()) == 1
    queued = h.rows("select body, meta from t_messages where direction = 'out'")
    assert len(queued) == 1 and queued[0]["meta"]["text_source"] == "openai"


def test_two_jobs_of_one_step_while_the_model_thinks_queue_one_message(
    make_harness: Callable[..., Harness], openai_sim: OpenAISimHandle
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mirage.jobs.rounds import advance_round

    h = make_harness(exchanges=(2, 2))
    give_the_tenant_a_model(h, openai_sim)
    openai_sim.faults(slow_next=2, slow_s=1.5)
    assert h.tick()["created"] == 1
    round_id = h.rows("select id::text from t_rounds")[0]["id"]
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(advance_round, [round_id, round_id]))
    assert outcomes == ["step 0 queued", "step 0 queued"]
    # both asked the model: the second did not wait on the first's round lock, as it would have had the model
    # been called inside the transaction (it would then have found the message queued and asked nothing)
    assert len(openai_sim.requests()) == 2
    assert h.count("select count(*) as n from t_messages where direction = 'out'") == 1
    assert h.rows("select status::text from t_rounds") == [{"status": "active"}]
