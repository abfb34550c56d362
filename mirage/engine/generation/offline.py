"""The offline generator: persona phrase banks + built-in pt-BR banks + the topic seed, varied, deterministic per rng.

Each text is assembled from slots (opener, body, tail, laugh, closing punctuation, emoji, case), so the space per
step is in the hundreds of thousands; a draw that equals (normalised) one of `avoid` or breaks the step's guards is
drawn again. It is what answers with no key, in tests, the demo, simulation, and whenever the model fails.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection

from mirage.config.types import Daypart
from mirage.engine.generation import banks
from mirage.engine.generation.guards import normalized, violations
from mirage.engine.generation.model import PHRASE_KINDS, PersonaLike, Step, Voice

ATTEMPTS = 24
_TRAILING = re.compile(r"[\s!?.,;…]+$")
_EMOJI_TAIL = re.compile(r"[\s\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F\u200d]+$")
_INTERJECTED = re.compile(r"^(?:[EeÉé]\s|\w+(?:\s\w+)?,)")
_ARTICLES = {"o": ("no", "do"), "a": ("na", "da"), "os": ("nos", "dos"), "as": ("nas", "das")}


def generate(
    step: Step,
    persona: PersonaLike | Voice,
    daypart: Daypart,
    rng: random.Random,
    *,
    seed: str = "",
    avoid: Collection[str] = (),
    seen: Collection[str] = (),
) -> str:
    """A text for `step` in `persona`'s voice, within the step's guards, never (normalised) in `avoid` and never
    exactly one of `seen` (the conversation's earlier texts). Deterministic for a given rng state.

    `avoid` holds normalised texts (guards.recent_set of the last messages); `seen` may be long (a month).
    """
    voice = Voice.of(persona)
    for _ in range(ATTEMPTS):
        text = _draw(step, voice, daypart, rng, seed)
        if text not in seen and normalized(text) not in avoid and not violations(text, step):
            return text
    # Persona banks that break the guards (a link in YAML) or a tiny space exhausted by `avoid`: built-ins only,
    # with two follow-ups, which always differs from a short history.
    for _ in range(ATTEMPTS):
        text = _builtin(step, daypart, rng)
        if text not in seen and normalized(text) not in avoid and not violations(text, step):
            return text
    return _builtin(step, daypart, rng)


def _draw(step: Step, persona: Voice, daypart: Daypart, rng: random.Random, seed: str) -> str:
    if step == "greeting":
        text = _greeting(persona, daypart, rng)
    elif step == "goodbye":
        text = _goodbye(persona, daypart, rng)
    else:
        text = _talk(step, persona, rng, seed)
    return _vary(text, step, persona, daypart, rng)


def _greeting(persona: Voice, daypart: Daypart, rng: random.Random) -> str:
    own = persona.greetings.get(daypart, ())
    base = rng.choice(own) if own and rng.random() < 0.8 else rng.choice(banks.GREETINGS[daypart])
    core = _bare(base)
    ending = rng.choice(("!", "!", "!!", ","))
    r = rng.random()
    pool = banks.GREETING_FOLLOWUPS + banks.DAYPART_FOLLOWUPS[daypart]
    if r < 0.25:
        return core + ("!" if ending == "," else ending)
    follow = rng.choice(pool)
    if ending == ",":
        follow = _lower_first(follow)
    text = f"{core}{ending} {follow}"
    if r > 0.7:
        second = rng.choice(pool)
        if second != follow:
            text = f"{_bare(text)}{_end_of(follow)} {second}"
    return text


def _talk(step: Step, persona: Voice, rng: random.Random, seed: str) -> str:
    own = persona.phrases.get(PHRASE_KINDS[step], ())
    builtin = {"comment": banks.COMMENTS, "question": banks.QUESTIONS}.get(step, banks.ANSWERS)
    r = rng.random()
    if seed and banks.SEEDED[step] and r < 0.4:
        body = _seeded(rng.choice(banks.SEEDED[step]), seed)
    elif own and r < 0.8:
        body = rng.choice(own)
    else:
        body = rng.choice(builtin)
    is_question = body.rstrip().endswith("?")
    core = _bare(body)
    openers = banks.OPENERS[step]
    if openers and rng.random() < 0.45 and not _INTERJECTED.match(core):  # not "Ó, pois é, …" nor "E aí, e …"
        core = f"{rng.choice(openers)} {_lower_first(core)}"
    tails = banks.TAILS[step]
    if tails and not is_question and rng.random() < 0.35:
        core += rng.choice(tails)
    if is_question:
        return core + rng.choice(("?", "?", "??", "?!"))
    return core + rng.choice(("", "!", "!", ".", "...", "!!"))


def _goodbye(persona: Voice, daypart: Daypart, rng: random.Random) -> str:
    own = persona.phrases.get("goodbyes", ())
    r = rng.random()
    main = rng.choice(own) if own and r < 0.6 else rng.choice(banks.GOODBYES + banks.DAYPART_GOODBYES[daypart])
    if rng.random() < 0.4:
        lead = rng.choice(banks.GOODBYE_LEADS)
        opener = banks.OPENERS["goodbye"]
        if rng.random() < 0.4:
            lead = f"{rng.choice(opener)} {_lower_first(lead)}"
        main = f"{lead} {main}"
    if rng.random() < 0.3:
        extra = rng.choice(banks.DAYPART_GOODBYES[daypart] + banks.GOODBYES)
        if normalized(extra) not in normalized(main):
            main = f"{_bare(main)}{_end_of(main)} {extra}"
    return main


def _vary(text: str, step: Step, persona: Voice, daypart: Daypart, rng: random.Random) -> str:
    if step in ("comment", "answer") and "kk" not in text and rng.random() < 0.22:
        text = f"{text} {rng.choice(banks.LAUGHS)}"
    if rng.random() < persona.emoji_rate and not _EMOJI_TAIL.search(text):
        pool = banks.EMOJIS[step] + (banks.DAYPART_EMOJIS[daypart] if step in ("greeting", "goodbye") else ())
        text = f"{text} {rng.choice(pool)}"
        if rng.random() < 0.15:
            text += rng.choice(pool)
    if rng.random() < 0.1:
        text = text.lower()
    return text


def _seeded(template: str, seed: str) -> str:
    s = _bare(seed.strip())
    low = _lower_first(s)
    first, _, rest = low.partition(" ")
    if first in _ARTICLES and rest:
        em_article, de_article = _ARTICLES[first]
        em, de = f"{em_article} {rest}", f"{de_article} {rest}"
    else:
        em, de = f"em {low}", f"de {low}"
    return template.format(s=low, S=s[:1].upper() + s[1:], em=em, de=de)


def _builtin(step: Step, daypart: Daypart, rng: random.Random) -> str:
    if step == "greeting":
        first = rng.choice(banks.GREETINGS[daypart])
        return f"{_bare(first)}! {rng.choice(banks.GREETING_FOLLOWUPS)} {rng.choice(banks.DAYPART_FOLLOWUPS[daypart])}"
    if step == "goodbye":
        return f"{rng.choice(banks.GOODBYE_LEADS)} {rng.choice(banks.GOODBYES)} {rng.choice(banks.EMOJIS[step])}"
    body = {"comment": banks.COMMENTS, "question": banks.QUESTIONS}.get(step, banks.ANSWERS)
    opener = banks.OPENERS[step]
    return f"{rng.choice(opener)} {_lower_first(rng.choice(body))} {rng.choice(banks.EMOJIS[step])}"


def _bare(text: str) -> str:
    """`text` without its trailing emoji, spaces and punctuation."""
    return _TRAILING.sub("", _EMOJI_TAIL.sub("", text)) or text


def _end_of(text: str) -> str:
    """The closing punctuation of `text` (without emoji), or "!" when it has none."""
    stripped = _EMOJI_TAIL.sub("", text).rstrip()
    tail = stripped[len(_TRAILING.sub("", stripped)) :].strip()
    return tail if tail and tail[-1] in "!?." else "!"


def _lower_first(text: str) -> str:
    # Keep acronyms and names ("TV", "Corinthians" after the first word) as they are.
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]
