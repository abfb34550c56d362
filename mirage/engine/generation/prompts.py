"""Chat prompts from the jinja2 templates shipped in this package: a system prompt and one user prompt per step.

Templates are plain text (no autoescape) and strict about undefined names. Message bodies, the persona's style
and the topic's seed reach them only as variables, so `{{ 7*7 }}` inside a message stays exactly that: nothing
a person writes is ever parsed by the template engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import jinja2

from mirage.config.types import Daypart
from mirage.engine.generation.model import LENGTH_BOUNDS, ChatMessage, Line, PersonaLike, Step, TopicLike, Voice

PROMPT_HISTORY = 6  # messages of the conversation shown to the model
DAYPART_LABELS: dict[Daypart, str] = {"morning": "de manhã", "afternoon": "de tarde", "evening": "de noite"}
_GREETING_WORD: dict[Daypart, str] = {"morning": "bom dia", "afternoon": "boa tarde", "evening": "boa noite"}


@cache
def environment() -> jinja2.Environment:
    """The template environment (built once): package templates, no autoescape, undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("mirage.engine.generation", "templates"),
        autoescape=False,  # noqa: S701 - plain chat text, never HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render_prompt(
    step: Step,
    persona: PersonaLike | Voice,
    topic: TopicLike | None,
    history: Sequence[Line],
    daypart: Daypart,
    *,
    rejected: Sequence[str] = (),
) -> list[ChatMessage]:
    """The chat messages asking the model for `step`: system (persona, topic, daypart, rules) + the step prompt."""
    env = environment()
    context = {
        "persona": Voice.of(persona),
        "topic": topic,
        "history": list(history[-PROMPT_HISTORY:]),
        "daypart": daypart,
        "daypart_label": DAYPART_LABELS[daypart],
        "greeting_word": _GREETING_WORD[daypart],
        "max_chars": LENGTH_BOUNDS[step][1],
        "rejected": list(rejected),
        "step": step,
    }
    system = env.get_template("system.j2").render(context).strip()
    user = env.get_template(f"{step}.j2").render(context).strip()
    return [ChatMessage("system", system), ChatMessage("user", user)]
