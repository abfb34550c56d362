"""The one seam between rounds and text generation: `text_for(step, persona, topic, history, daypart, rng)`.

Until the text issue's `compose()` (OpenAI, or its offline generator) is wired in here, the text comes from the
persona's greetings and phrase banks, varied with a short tail and an emoji so the no-repeat guard has room.
The round shell calls only this function, so swapping the generator changes one place.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from mirage.engine.view import Persona, Topic

# Used when a persona leaves a bank empty (pt-BR: the product's default voice).
FALLBACK: dict[str, tuple[str, ...]] = {
    "greeting": ("Opa, tudo bem?", "E aí, meu amigo!", "Fala, parceiro!"),
    "comment": ("Hoje o dia tá corrido por aqui", "Rapaz, que calor que tá fazendo", "Tô pensando num churrasco"),
    "question": ("E a família, como vai?", "Vai fazer o que no fim de semana?", "Tudo certo por aí?"),
    "answer": ("Tudo na paz, graças a Deus!", "Por aqui tudo tranquilo", "Vou descansar um pouco kkkk"),
    "goodbye": ("Abraço, fica com Deus!", "Valeu, até mais!", "Falou, bom descanso!"),
}
_BANK = {"comment": "comments", "question": "questions", "answer": "answers", "goodbye": "goodbyes"}
TAILS = ("", "", " kkkk", " rapaz", " viu", " meu amigo", " hein", " 😅", " 🙏")
EMOJIS = ("😄", "👍", "🙌", "😂", "☀️", "🍖", "⚽", "❤️", "😎", "🤝", "🙏", "😊")


def choices(kind: str, persona: Persona | None, daypart: str | None) -> Sequence[str]:
    """The phrases a persona offers for a step kind (its greetings for the daypart, or a phrase bank)."""
    if persona is not None:
        if kind == "greeting":
            bank = persona.greetings.get(daypart or "morning", ())
        else:
            bank = persona.phrases.get(_BANK.get(kind, ""), ())
        if bank:
            return bank
    return FALLBACK.get(kind, FALLBACK["comment"])


def text_for(
    step: str,
    persona: Persona | None,
    topic: Topic | None,
    history: Sequence[str],
    daypart: str | None,
    rng: random.Random,
) -> str:
    """One short message for the round step `step` ("greeting", "comment", "question", "answer", "goodbye")."""
    base = rng.choice(list(choices(step, persona, daypart)))
    tail = rng.choice(TAILS)
    text = base.rstrip() + tail if tail and not base.rstrip().endswith(("!", "?", ".")) else base.rstrip()
    rate = persona.emoji_rate if persona is not None else 0.3
    if rng.random() < rate:
        text = f"{text} {rng.choice(EMOJIS)}"
    return text


FILLERS = (
    "por aqui tudo certo",
    "que semana corrida",
    "graças a Deus",
    "vamos que vamos",
    "tamo junto",
    "é isso aí",
    "fica bem",
    "abraço",
    "kkkk",
    "bora",
    "saudade",
    "depois a gente se fala",
)


def fallback_text(step: str, rng: random.Random) -> str:
    """A last resort when every draw repeated a recent text: a phrase and one or two fillers (hundreds of variants
    that stay different after normalisation, which drops emojis and punctuation)."""
    base = rng.choice(FALLBACK[step if step in FALLBACK else "comment"])
    extra = rng.sample(FILLERS, k=rng.choice((1, 2)))
    return f"{base} {', '.join(extra)}"
