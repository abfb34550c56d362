"""Message text for the runtime: `compose()` = the pure generation core + the OpenAI client when configured.

    from mirage.integrations.openai import compose
    out = compose("greeting", persona, topic, history, "morning", random.Random(seed), llm_config)
    out.text, out.source ("openai" | "offline"), out.tokens, out.reasons; out.meta(topic_key) -> t_messages.meta

`llm_config` None (or without key and base_url) means offline. docs/generation.md and ADR 0030 describe it.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from mirage.config.types import Daypart
from mirage.engine.generation.compose import compose as core_compose
from mirage.engine.generation.model import Composed, Line, LLMConfig, PersonaLike, Step, TopicLike, Voice
from mirage.integrations.openai.client import OpenAIChat, openai_client


def compose(
    step: Step,
    persona: PersonaLike | Voice,
    topic: TopicLike | None,
    history: Sequence[Line],
    daypart: Daypart,
    rng: random.Random,
    llm_config: LLMConfig | None = None,
    *,
    avoid: Collection[str] = (),
) -> Composed:
    """The text `persona` sends as `step` now: from the model in `llm_config` when set, else (or on failure) offline.

    Never raises for a model failure: the offline generator answers and `Composed.reasons` says why. `avoid`:
    normalised texts never to send (guards.recent_set), on top of the last messages of `history`.
    """
    chat = OpenAIChat(llm_config) if llm_config is not None and (llm_config.api_key or llm_config.base_url) else None
    if llm_config is None:
        return core_compose(step, persona, topic, history, daypart, rng, chat, avoid=avoid)
    return core_compose(
        step,
        persona,
        topic,
        history,
        daypart,
        rng,
        chat,
        model=llm_config.model,
        temperature=llm_config.temperature,
        avoid=avoid,
    )


__all__ = [
    "Composed",
    "LLMConfig",
    "Line",
    "OpenAIChat",
    "PersonaLike",
    "TopicLike",
    "Voice",
    "compose",
    "openai_client",
]
