"""Message text, pure: the offline persona generator, guards, topic choice, jinja2 prompts and compose().

The runtime calls `mirage.integrations.openai.compose(...)`, which adds the OpenAI client (the shell) to
`compose` here; docs/generation.md describes personas, topics and how a text is made.
"""

from mirage.engine.generation.compose import compose
from mirage.engine.generation.guards import clean, recent_set, violations
from mirage.engine.generation.model import (
    LENGTH_BOUNDS,
    STEPS,
    ChatMessage,
    ChatPort,
    Composed,
    Line,
    LLMAnswer,
    LLMConfig,
    PersonaLike,
    Step,
    TopicLike,
    Voice,
)
from mirage.engine.generation.offline import generate
from mirage.engine.generation.prompts import render_prompt
from mirage.engine.generation.topics import TopicPick, active_keys, choose_topic

__all__ = [
    "LENGTH_BOUNDS",
    "STEPS",
    "ChatMessage",
    "ChatPort",
    "Composed",
    "LLMAnswer",
    "LLMConfig",
    "Line",
    "PersonaLike",
    "Step",
    "TopicLike",
    "TopicPick",
    "Voice",
    "active_keys",
    "choose_topic",
    "clean",
    "compose",
    "generate",
    "recent_set",
    "render_prompt",
    "violations",
]
