"""compose(): one message text for a step, from the model when there is one, guarded, else from the offline generator.

The model is a port (ChatPort); this module does no I/O. A transport failure (the client's bounded retries
spent) goes straight to the offline generator; a guard violation gets one more model attempt, told why, then
the offline generator. Every failure is kept in `Composed.reasons`.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from mirage.config.types import Daypart
from mirage.engine.generation.guards import clean, recent_set, violations
from mirage.engine.generation.model import ChatPort, Composed, Line, PersonaLike, Step, TopicLike, Voice
from mirage.engine.generation.offline import generate
from mirage.engine.generation.prompts import render_prompt

RECENT_MESSAGES = 20  # a text equal (normalised) to one of these is never sent
MODEL_ATTEMPTS = 2  # the first answer and one retry after a guard violation


def compose(
    step: Step,
    persona: PersonaLike | Voice,
    topic: TopicLike | None,
    history: Sequence[Line],
    daypart: Daypart,
    rng: random.Random,
    chat: ChatPort | None = None,
    *,
    model: str = "gpt-4o-mini",
    temperature: float = 0.8,
    avoid: Collection[str] = (),
) -> Composed:
    """The text `persona` sends as `step`; `rng` drives the offline generator (deterministic for a seed).

    `history` is the conversation so far, oldest first, as long as the caller likes: the last PROMPT_HISTORY
    lines go to the model, the last RECENT_MESSAGES are never repeated (normalised), and the offline generator
    never repeats any of them exactly. `avoid` adds normalised texts (guards.recent_set) never to send either,
    whatever their age: the runtime passes what the conversation sent in its no-repeat window.
    """
    voice = Voice.of(persona)
    recent = recent_set(line.text for line in history[-RECENT_MESSAGES:]) | frozenset(avoid)
    reasons: list[str] = []
    tokens = 0
    if chat is not None:
        rejected: list[str] = []
        for _ in range(MODEL_ATTEMPTS):
            messages = render_prompt(step, voice, topic, history, daypart, rejected=rejected)
            answer = chat(messages, model=model, temperature=temperature)
            tokens += answer.tokens
            if answer.text is None:
                reasons.append(f"openai:{answer.error or 'no_answer'}")
                break
            text = clean(answer.text, names=(voice.name,))
            rejected = violations(text, step, recent)
            if not rejected:
                return Composed(text, "openai", tokens, tuple(reasons))
            reasons.append("guard:" + ",".join(rejected))
    seen = {line.text for line in history}
    text = generate(step, voice, daypart, rng, seed=topic.seed if topic else "", avoid=recent, seen=seen)
    return Composed(text, "offline", tokens, tuple(reasons))
