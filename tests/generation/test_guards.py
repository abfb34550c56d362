"""Guards: what a model wraps around a message is cleaned; links, numbers, e-mails, mentions, essays, repeats stop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirage.engine.generation import LENGTH_BOUNDS, STEPS, clean, recent_set, violations


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Assistente: Bom dia, meu querido!", "Bom dia, meu querido!"),
        ("assistant: Bom dia!", "Bom dia!"),
        ("**Resposta:** Tudo certo kkkk", "Tudo certo kkkk"),
        ("Tio Zé: Boa tarde!", "Boa tarde!"),
        ('"Boa noite, querido!"', "Boa noite, querido!"),
        ("“Fica com Deus!”", "Fica com Deus!"),
        ("**Bom dia!** Tudo *certo*?", "Bom dia! Tudo certo?"),
        ("# Bom dia\n- tudo bem?", "Bom dia tudo bem?"),
        ("> Valeu, abraço!", "Valeu, abraço!"),
        ("Bom dia!\n\nTudo certo?", "Bom dia! Tudo certo?"),
        ('Ele disse "oi" e foi embora', 'Ele disse "oi" e foi embora'),
    ],
)
def test_clean_strips_role_prefixes_quotes_and_markdown(raw: str, expected: str) -> None:
    assert clean(raw, names=("Tio Zé",)) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Olha isso https://promo.example/x", "link"),
        ("Entra em www.loja.com.br", "link"),
        ("Acessa bit.ly/abc", "link"),
        ("Vê no site padaria.com.br", "link"),
        ("Me liga no (11) 99876-5432", "phone"),
        ("Meu zap +55 11 998765432", "phone"),
        ("Manda pra ze@padaria.com.br", "email"),
        ("Fala com o @juca_padeiro", "mention"),
        ("Tudo bem? " * 200, "too_long"),
        ("", "empty"),
    ],
)
def test_violations_name_what_must_not_be_sent(text: str, reason: str) -> None:
    assert reason in violations(text, "comment")


@pytest.mark.parametrize(
    "text",
    ["Bom dia! ☀️", "Jogo às 16:00, 2 a 1 pro Timão kkkk", "Custa R$ 12,50 o quilo", "Abraço!! 🙏", "Nota 10/10"],
)
def test_ordinary_small_talk_passes(text: str) -> None:
    assert violations(text, "comment") == []


def test_a_repeat_of_a_recent_message_is_refused_even_with_other_case_accents_and_punctuation() -> None:
    recent = recent_set(["Bom dia, meu querido!", "Tudo na paz"])
    assert violations("bom dia meu querido", "greeting", recent) == ["repeat"]
    assert violations("TUDO NA PAZ!!!", "answer", recent) == ["repeat"]
    assert violations("Bom dia, rapaz!", "greeting", recent) == []


@pytest.mark.parametrize("step", STEPS)
def test_length_bounds_are_inclusive(step: str) -> None:
    low, high = LENGTH_BOUNDS[step]  # type: ignore[index]
    assert "too_long" not in violations("a" * high, step)  # type: ignore[arg-type]
    assert "too_long" in violations("a" * (high + 1), step)  # type: ignore[arg-type]
    assert "too_short" in violations("a" * (low - 1), step) or low == 1  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_clean_is_idempotent_and_never_grows_the_text(raw: str) -> None:
    once = clean(raw, names=("Tio",))
    assert clean(once, names=("Tio",)) == once
    assert len(once) <= len(raw)
