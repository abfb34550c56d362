"""Message text speed: offline generation rate and the overhead Mirage adds around a model call.

    .venv/bin/python bench/generation.py [--messages 20000] [--calls 3000] [--http 200]

Figures:
  * offline generation: compose() with no model, the five steps in turn, two personas of the example
    tenants, a 40-line history (the guards compare against it), in one process;
  * overhead around an OpenAI call: compose() through an in-process ChatPort that answers instantly, so the
    time is the prompt render (jinja2), cleaning and guards, and nothing else;
  * for information, the runtime's offline path: mirage.jobs.text.write_text (compose() plus the round's rule)
    with what a busy conversation brings, a 20-line history and a week of 500 sent texts never to repeat
    (normalising those 500 is most of its cost; the database work around it costs more);
  * for information, compose() through the real `openai` client against `mirage sim openai` on loopback.
Targets: offline >= 5,000 messages/s; overhead <= 2 ms per message.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mirage.config import load_fleet  # noqa: E402
from mirage.engine.generation import STEPS, ChatMessage, Line, LLMAnswer, LLMConfig, compose  # noqa: E402

TARGET_RATE = 5000.0
TARGET_OVERHEAD_MS = 2.0


def instant(messages: list[ChatMessage], *, model: str, temperature: float) -> LLMAnswer:
    """A model that answers at once, varied enough not to trip the repeat guard."""
    return LLMAnswer(f"Opa, tudo certo por aqui! {len(messages[-1].content) % 97} kkkk", 120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000, help="offline messages to generate")
    parser.add_argument("--calls", type=int, default=3000, help="compose() calls through the instant model")
    parser.add_argument("--http", type=int, default=200, help="calls through the simulator (0: skip)")
    args = parser.parse_args()

    tenant = load_fleet(ROOT / "tenants.d").tenants["padaria-do-ze"]
    people = [tenant.personas["tio-ze"], tenant.personas["tio-juca"]]
    topic = tenant.conversations["balcao-e-forno"].topics["futebol"]
    history = [Line(f"Mensagem antiga número {i}, kkkk", i % 2 == 0) for i in range(40)]
    rng = random.Random(1)

    for i in range(500):  # warm up: templates compiled, caches filled
        compose(STEPS[i % 5], people[i % 2], topic, history, "morning", rng)
        compose(STEPS[i % 5], people[i % 2], topic, history, "morning", rng, instant)

    t0 = time.perf_counter()
    for i in range(args.messages):
        compose(STEPS[i % 5], people[i % 2], topic, history, ("morning", "afternoon", "evening")[i % 3], rng)
    offline_s = time.perf_counter() - t0
    rate = args.messages / offline_s

    t0 = time.perf_counter()
    sources = set()
    for i in range(args.calls):
        out = compose(STEPS[i % 5], people[i % 2], topic, history, "evening", rng, instant)
        sources.add(out.source)
    overhead_ms = (time.perf_counter() - t0) / args.calls * 1000

    runtime_rate = runtime_offline_rate(people, args.messages // 4)

    print(f"generation bench: one process, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    verdict = "ok" if rate >= TARGET_RATE else "MISSED"
    print(f"  offline generation:          {rate:9,.0f} messages/s  (target >= {TARGET_RATE:,.0f})   {verdict}")
    print(f"  runtime offline (write_text): {runtime_rate:9,.0f} messages/s  (information: 500 texts to avoid)")
    verdict = "ok" if overhead_ms <= TARGET_OVERHEAD_MS and sources == {"openai"} else "MISSED"
    print(
        f"  overhead around a model call: {overhead_ms:8.3f} ms/message "
        f"(target <= {TARGET_OVERHEAD_MS} ms; prompt render + clean + guards)   {verdict}"
    )
    if args.http:
        from mirage.integrations.openai import compose as compose_http
        from mirage.integrations.openai_sim import OpenAISimConfig, run_openai_sim

        with run_openai_sim(OpenAISimConfig(seed=1)) as sim:
            cfg = LLMConfig(base_url=sim.base_url, api_key="sk-bench-0000000000000000")
            compose_http("greeting", people[0], topic, history, "morning", rng, cfg)
            t0 = time.perf_counter()
            for i in range(args.http):
                compose_http(STEPS[i % 5], people[i % 2], topic, history, "morning", rng, cfg)
            http_ms = (time.perf_counter() - t0) / args.http * 1000
        print(f"  through the real client + simulator on loopback: {http_ms:.2f} ms/message (information)")


def runtime_offline_rate(people: list[Any], n: int) -> float:
    """write_text() offline, as advance_round calls it, for a conversation with a week of texts behind it."""
    from mirage.engine.generation import Voice
    from mirage.jobs.text import TextRequest, write_text

    voices = [Voice.of(p) for p in people]
    week = tuple(f"Texto enviado na semana, número {i} kkkk" for i in range(500))
    history = tuple(Line(t, i % 2 == 0) for i, t in enumerate(week[-20:]))

    def request(i: int) -> TextRequest:
        return TextRequest(
            kind=STEPS[i % 5],
            persona=voices[i % 2],
            topic=None,
            history=history,
            daypart=("morning", "afternoon", "evening")[i % 3],
            last_received=history[-1].text,
            recent=week,
            guard_no_echo=True,
            llm=None,
            seed=f"round:bench:{i}",
        )

    for i in range(200):  # warm up
        write_text(request(i))
    t0 = time.perf_counter()
    for i in range(n):
        assert write_text(request(i)) is not None
    return n / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
