"""Prompts come from the package's jinja2 templates; what people wrote is data, never template code."""

from __future__ import annotations

import itertools

import pytest

from mirage.config.conversations import Topic
from mirage.engine.generation import STEPS, Line, render_prompt
from mirage.engine.generation.prompts import PROMPT_HISTORY, environment
from tests.generation.helpers import persona


@pytest.mark.parametrize("step", STEPS)
def test_every_step_has_a_template_and_a_system_prompt_with_persona_topic_and_daypart(step: str) -> None:
    topic = Topic(seed="O churrasco de domingo", system_prompt="Sem falar de política.")
    system, user = render_prompt(step, persona("padaria-do-ze", "tio-ze"), topic, [], "evening")  # type: ignore[arg-type]
    assert system.role == "system" and user.role == "user"
    assert "Tio Zé" in system.content and "Tiozão de padaria" in system.content
    assert "O churrasco de domingo" in system.content and "Sem falar de política." in system.content
    assert "de noite" in system.content and "português do Brasil" in system.content
    assert user.content.strip()


@pytest.mark.parametrize(
    "body",
    ["{{ 7*7 }}", "{% for x in range(3) %}x{% endfor %}", "{{ config }}", "{# hidden #}", "{{ ''.__class__ }}"],
)
def test_template_syntax_in_a_message_body_stays_literal(body: str) -> None:
    history = [Line(body, mine=False)]
    topic = Topic(seed=body, system_prompt=body)
    odd = persona("padaria-do-ze", "tio-ze").model_copy(update={"style": body, "name": body})
    system, user = render_prompt("answer", odd, topic, history, "morning")
    assert body in user.content and body in system.content
    assert "49" not in user.content and "xxx" not in user.content


def test_only_the_last_messages_reach_the_model_marked_by_who_wrote_them() -> None:
    history = [Line(f"mensagem {i}", mine=i % 2 == 0) for i in range(20)]
    _, user = render_prompt("answer", persona("padaria-do-ze", "tio-ze"), None, history, "morning")
    assert "mensagem 13" not in user.content and "mensagem 14" in user.content and "mensagem 19" in user.content
    assert user.content.count("\n- ") == PROMPT_HISTORY
    assert "- Você: mensagem 18" in user.content and "- A outra pessoa: mensagem 19" in user.content


def test_a_rejected_answer_is_explained_in_the_retry_prompt() -> None:
    _, user = render_prompt("comment", persona("padaria-do-ze", "tio-ze"), None, [], "morning", rejected=["link"])
    assert "recusada (link)" in user.content


def test_templates_are_plain_text_and_strict() -> None:
    env = environment()
    assert env.autoescape is False
    assert sorted(n for n in env.list_templates() if not n.startswith("_")) == sorted(
        [f"{s}.j2" for s in STEPS] + ["system.j2"]
    )


@pytest.mark.parametrize("daypart", ["morning", "afternoon", "evening"])
@pytest.mark.parametrize("step", STEPS)
def test_prompts_read_as_plain_portuguese_without_doubled_words(step: str, daypart: str) -> None:
    history = [Line("Bom dia, meu querido!", mine=False)]
    messages = render_prompt(step, persona("padaria-do-ze", "tio-ze"), None, history, daypart)  # type: ignore[arg-type]
    for m in messages:
        words = m.content.lower().split()
        doubled = [a for a, b in itertools.pairwise(words) if a == b and a.isalpha()]
        assert doubled == [], (step, daypart, m.content)
