"""The values text generation trades in: steps and their length bounds, history lines, the model port, results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, Protocol, get_args

Step = Literal["greeting", "comment", "question", "answer", "goodbye"]
STEPS: tuple[Step, ...] = get_args(Step)
Source = Literal["openai", "offline"]
Role = Literal["system", "user", "assistant"]

# Characters a message of each step may have after cleaning (inclusive). WhatsApp small talk: short.
LENGTH_BOUNDS: dict[Step, tuple[int, int]] = {
    "greeting": (2, 120),
    "comment": (4, 240),
    "question": (4, 200),
    "answer": (2, 240),
    "goodbye": (2, 140),
}


PHRASE_KINDS: dict[Step, str] = {
    "comment": "comments",
    "question": "questions",
    "answer": "answers",
    "goodbye": "goodbyes",
}
_DAYPARTS = ("morning", "afternoon", "evening")


class PersonaLike(Protocol):
    """A persona as config (mirage.config.personas.Persona) or runtime view (mirage.engine.view.Persona) has it:
    `greetings` and `phrases` as objects with one attribute per daypart / kind, or as mappings."""

    @property
    def name(self) -> str: ...
    @property
    def style(self) -> str: ...
    @property
    def emoji_rate(self) -> float: ...
    @property
    def greetings(self) -> Any: ...
    @property
    def phrases(self) -> Any: ...


class TopicLike(Protocol):
    """A topic as config or runtime view has it (seed, system prompt, active dates, weight)."""

    @property
    def seed(self) -> str: ...
    @property
    def system_prompt(self) -> str: ...
    @property
    def active_from(self) -> date | None: ...
    @property
    def active_to(self) -> date | None: ...
    @property
    def weight(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Voice:
    """What generation reads of a persona, in one shape whatever the persona came from."""

    name: str
    style: str
    emoji_rate: float
    greetings: Mapping[str, tuple[str, ...]]  # by daypart
    phrases: Mapping[str, tuple[str, ...]]  # comments | questions | answers | goodbyes

    @classmethod
    def of(cls, persona: PersonaLike | Voice) -> Voice:
        """The Voice of a config persona, a runtime view persona, or a Voice (returned as is)."""
        if isinstance(persona, Voice):
            return persona
        return cls(
            name=str(persona.name),
            style=str(persona.style or ""),
            emoji_rate=float(persona.emoji_rate or 0),
            greetings={d: _bank(persona.greetings, d) for d in _DAYPARTS},
            phrases={k: _bank(persona.phrases, k) for k in PHRASE_KINDS.values()},
        )


def _bank(holder: Any, name: str) -> tuple[str, ...]:
    found = holder.get(name) if isinstance(holder, Mapping) else getattr(holder, name, None)
    if isinstance(found, str) or not isinstance(found, Sequence):
        return ()
    return tuple(str(x) for x in found if x)


@dataclass(frozen=True, slots=True)
class Line:
    """One earlier message of the conversation: its text and whether the persona speaking now wrote it."""

    text: str
    mine: bool = False


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a chat-completions request."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class LLMAnswer:
    """What the model port returns: the text (None on failure), tokens used and, on failure, why."""

    text: str | None
    tokens: int = 0
    error: str | None = None


class ChatPort(Protocol):
    """Anything that turns chat messages into one answer (the OpenAI client in production, a stub nowhere)."""

    def __call__(self, messages: list[ChatMessage], *, model: str, temperature: float) -> LLMAnswer: ...


@dataclass(frozen=True, repr=False)
class LLMConfig:
    """How to reach the model for one conversation; `api_key` never prints (repr hides it)."""

    model: str = "gpt-4o-mini"
    temperature: float = 0.8
    api_key: str | None = None
    base_url: str | None = None
    timeout_s: float = 15.0
    max_retries: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.timeout_s <= 15:
            raise ValueError("timeout_s must be in (0, 15]")
        if not 0 <= self.max_retries <= 5:
            raise ValueError("max_retries must be in [0, 5]")

    def __repr__(self) -> str:
        key = "set" if self.api_key else "unset"
        return f"LLMConfig(model={self.model!r}, base_url={self.base_url!r}, api_key={key})"


@dataclass(frozen=True)
class Composed:
    """A message text ready to send, where it came from, tokens spent and every guard or model failure met."""

    text: str
    source: Source
    tokens: int = 0
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def meta(self, topic: str | None = None) -> dict[str, Any]:
        """The keys this text adds to t_messages.meta (`text_source`, `tokens`, `text_reasons`, `topic`)."""
        out: dict[str, Any] = {"text_source": self.source, "tokens": self.tokens}
        if self.reasons:
            out["text_reasons"] = list(self.reasons)
        if topic is not None:
            out["topic"] = topic
        return out
