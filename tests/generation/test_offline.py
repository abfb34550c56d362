"""The offline generator: a month of one pair without an exact repeat, within bounds, greetings of the daypart."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from mirage.config.personas import Persona
from mirage.engine.generation import LENGTH_BOUNDS, STEPS, compose, generate, violations
from mirage.engine.generation.banks import DAYPART_WORDS
from mirage.engine.generation.guards import normalized
from mirage.engine.text import normalize_text
from tests.generation.helpers import PAIRS, persona, talk_for_a_month, topics

MONTHS = [(*pair, seed) for pair in PAIRS for seed in (1, 2)]


@pytest.fixture(scope="module", params=MONTHS, ids=[f"{m[0]}-seed{m[4]}" for m in MONTHS])
def month(request: pytest.FixtureRequest) -> list:  # type: ignore[type-arg]
    return talk_for_a_month(compose, *request.param)


def test_a_month_of_one_pair_never_repeats_a_message_exactly(month: list) -> None:  # type: ignore[type-arg]
    counts = Counter(s.out.text for s in month)
    assert len(month) > 1500
    assert [t for t, n in counts.items() if n > 1] == []


def test_every_message_of_the_month_is_within_its_steps_bounds_and_guards(month: list) -> None:  # type: ignore[type-arg]
    for s in month:
        low, high = LENGTH_BOUNDS[s.step]
        assert low <= len(s.out.text) <= high, (s.step, s.out.text)
        assert violations(s.out.text, s.step) == [], s.out.text
        assert s.out.source == "offline" and s.out.reasons == ()


def test_greetings_of_the_month_name_their_daypart_and_no_other(month: list) -> None:  # type: ignore[type-arg]
    for s in (s for s in month if s.step == "greeting"):
        text = f" {normalize_text(s.out.text)} "
        own = DAYPART_WORDS[s.daypart]
        others = [w for part, words in DAYPART_WORDS.items() if part != s.daypart for w in words]
        assert any(w in text for w in own), s.out.text  # "bom diaaa" counts as "bom dia"
        assert not any(w in text for w in others), s.out.text


def test_the_month_varies_emoji_laughter_punctuation_and_case(month: list) -> None:  # type: ignore[type-arg]
    texts = [s.out.text for s in month]
    assert sum("kkk" in t for t in texts) > len(texts) * 0.05
    assert sum(t == t.lower() and any(c.isalpha() for c in t) for t in texts) > len(texts) * 0.03
    assert sum(any(ord(c) > 0x2500 for c in t) for t in texts) > len(texts) * 0.15
    assert len({t[-1] for t in texts}) >= 5


@pytest.mark.parametrize("step", STEPS)
def test_the_same_seed_gives_the_same_text_and_another_seed_varies(step: str) -> None:
    p, subject = persona("padaria-do-ze", "tio-ze"), topics("padaria-do-ze", "balcao-e-forno")["futebol"]
    first = [compose(step, p, subject, [], "morning", random.Random(42)).text for _ in range(3)]  # type: ignore[arg-type]
    assert len(set(first)) == 1
    many = {compose(step, p, subject, [], "morning", random.Random(s)).text for s in range(40)}  # type: ignore[arg-type]
    assert len(many) > 15


@pytest.mark.parametrize("step", STEPS)
def test_a_persona_without_phrases_still_speaks_from_the_built_in_banks(step: str) -> None:
    bare = Persona(name="Fulano", emoji_rate=0)
    text = generate(step, bare, "afternoon", random.Random(3), seed="O jogo de domingo")  # type: ignore[arg-type]
    assert violations(text, step) == []  # type: ignore[arg-type]


def test_persona_phrases_that_break_the_guards_are_never_used() -> None:
    spammy = Persona.model_validate(
        {
            "name": "Spam",
            "greetings": {"morning": ["Bom dia! Veja www.promo.com.br"]},
            "phrases": {"comments": ["Me chama no 11 99999-8888"], "goodbyes": ["Tchau @todos"]},
        }
    )
    rng = random.Random(5)
    for step in ("greeting", "comment", "goodbye"):
        for _ in range(30):
            text = generate(step, spammy, "morning", rng)  # type: ignore[arg-type]
            assert violations(text, step) == [], text  # type: ignore[arg-type]


def test_the_generator_avoids_the_recent_messages_even_from_a_tiny_bank() -> None:
    tiny = Persona.model_validate({"name": "Mono", "emoji_rate": 0, "phrases": {"answers": ["Tudo certo"]}})
    avoid = {normalized("Tudo certo")}
    for s in range(50):
        assert normalized(generate("answer", tiny, "evening", random.Random(s), avoid=avoid)) != "tudo certo"


def test_the_runtimes_row_views_speak_like_the_config_models() -> None:
    from mirage.engine.view import Topic as TopicView
    from mirage.engine.view import persona_view

    greetings = {"morning": ["Bom dia, meu querido!"], "afternoon": [], "evening": ["Boa noite!"]}
    phrases = {"comments": ["Hoje o pão saiu lindo"], "goodbyes": ["Fica com Deus!"]}
    row = {"id": "p1", "key": "tio-ze", "name": "Tio Zé", "style": "curto", "phrases": phrases, "emoji_rate": 0.4}
    view = persona_view(row | {f"greeting_{k}": v for k, v in greetings.items()})
    config = Persona.model_validate(
        {"name": "Tio Zé", "style": "curto", "greetings": greetings, "phrases": phrases, "emoji_rate": 0.4}
    )
    topic = TopicView("t1", "futebol", "O jogo de domingo", "", None, None, 2)
    for step in STEPS:
        a = compose(step, view, topic, [], "morning", random.Random(9))
        b = compose(step, config, topic, [], "morning", random.Random(9))
        assert a.text == b.text and violations(a.text, step) == []


@pytest.mark.parametrize(("rate", "low", "high"), [(0.0, 0.0, 0.0), (0.5, 0.35, 0.65), (1.0, 1.0, 1.0)])
def test_the_personas_emoji_rate_sets_how_many_messages_carry_an_emoji(rate: float, low: float, high: float) -> None:
    plain = Persona(name="Fulano", emoji_rate=rate)
    rng = random.Random(4)
    texts = [generate(STEPS[i % 5], plain, "afternoon", rng) for i in range(400)]  # type: ignore[arg-type]
    share = sum(any(ord(c) > 0x2500 for c in t) for t in texts) / len(texts)
    assert low <= share <= high
