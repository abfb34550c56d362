"""Opt-out detection (pure): the table of texts people really send, in pt-BR and English, with the verdict each
must get; then properties that hold for any text (Hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirage.config.outreach import DEFAULT_OPTOUT_KEYWORDS
from mirage.engine.optout import COMMANDS, PHRASES, detect, fold
from mirage.engine.text import normalize_text
from mirage.integrations.evolution_sim.config import HUMAN_REPLIES, OPTOUT_REPLIES

# (text, verdict, what matched) with the built-in lists and a policy's default keywords.
TABLE: list[tuple[str, str, str | None]] = [
    # opt-outs, pt-BR
    ("SAIR", "optout", "sair"),
    ("sair", "optout", "sair"),
    ("Sair, por favor!", "optout", "sair"),
    ("PARAR", "optout", "parar"),
    ("Pare.", "optout", "pare"),
    ("parar!!!", "optout", "parar"),
    ("CANCELAR", "optout", "cancelar"),
    ("Descadastrar", "optout", "descadastrar"),
    ("Não quero", "optout", "nao quero"),
    ("NAO QUERO MAIS", "optout", "nao quero mais"),
    ("Não quero mais receber, obrigado", "optout", "nao quero mais receber"),
    ("me tira dessa lista", "optout", "me tira dessa lista"),
    ("Por favor me tire da lista de vocês", "optout", "me tire da lista"),
    ("Não me mande mais mensagens", "optout", "nao me mande mais"),
    ("Pode parar de mandar mensagem", "optout", "parar de mandar"),
    ("para de me mandar isso", "optout", "para de me mandar"),
    ("quero sair dessa lista", "optout", "quero sair"),
    ("Tira meu número daí", "optout", "tira meu numero"),
    ("me deixa em paz", "optout", "me deixa em paz"),
    ("SAIR SAIR SAIR", "optout", "sair"),
    ("sair 🙏", "optout", "sair"),
    # opt-outs, English
    ("STOP", "optout", "stop"),
    ("stop thanks", "optout", "stop"),
    ("Unsubscribe", "optout", "unsubscribe"),
    ("Please stop messaging me", "optout", "stop messaging me"),
    ("remove me from this list", "optout", "remove me"),
    ("Don't contact me again", "optout", "don t contact me"),
    ("opt-out", "optout", "opt out"),
    ("END", "optout", "end"),
    ("Leave me alone!", "optout", "leave me alone"),
    # maybe an opt-out: paused for a person
    ("Não", "ambiguous", "nao"),
    ("não, obrigado", "ambiguous", "nao"),
    ("para com isso kkk", "ambiguous", "para com isso"),
    ("vou sair mais tarde", "ambiguous", "sair"),
    ("não quero incomodar, mas quem é?", "ambiguous", "nao quero"),
    ("Quem te deu meu número?", "ambiguous", "quem te deu meu numero"),
    ("isso é spam?", "ambiguous", "spam"),
    ("Chega!", "ambiguous", "chega"),
    ("no", "ambiguous", "no"),
    ("not interested", "ambiguous", "not interested"),
    ("Não tenho interesse", "ambiguous", "nao tenho interesse"),
    ("stop it", "ambiguous", "stop"),
    # not an opt-out
    ("Oi! Tudo bem?", "none", None),
    ("Bom dia! 🙏", "none", None),
    ("kkkk verdade", "none", None),
    ("Agora não posso falar, depois te respondo", "none", None),
    ("Sairei daqui a pouco", "none", None),
    ("Pararam de vender isso?", "none", None),
    ("Quero sim, pode mandar!", "none", None),
    ("Para mim tá ótimo", "none", None),
    ("Stopped by the store, talk later", "none", None),
    ("At the end of the day it worked", "none", None),
    ("Thanks, sounds good!", "none", None),
    ("ok", "none", None),
    ("", "none", None),
    ("👍", "none", None),
]


@pytest.mark.parametrize(("text", "verdict", "phrase"), TABLE)
def test_each_text_gets_its_verdict(text: str, verdict: str, phrase: str | None) -> None:
    d = detect(text, DEFAULT_OPTOUT_KEYWORDS)
    assert (d.verdict, d.phrase) == (verdict, phrase)


def test_the_table_holds_forty_texts_or_more_with_every_verdict() -> None:
    assert len(TABLE) >= 40
    assert {v for _, v, _ in TABLE} == {"optout", "ambiguous", "none"}


@pytest.mark.parametrize(
    ("text", "keywords", "verdict"),
    [
        ("BASTA", ["basta"], "optout"),  # a policy keyword alone: an opt-out
        ("Basta, obrigado", ["basta"], "optout"),
        ("basta de mensagem", ["basta"], "ambiguous"),  # inside a longer message: paused for a person
        ("Encerrar", ["ENCERRAR"], "optout"),  # keywords in any case and accents
        ("encerrar", [], "none"),  # not a built-in word
    ],
)
def test_policy_keywords_are_commands(text: str, keywords: list[str], verdict: str) -> None:
    assert detect(text, keywords).verdict == verdict


@pytest.mark.parametrize("text", OPTOUT_REPLIES)
def test_the_simulators_opt_out_replies_are_opt_outs(text: str) -> None:
    assert detect(text, DEFAULT_OPTOUT_KEYWORDS).verdict == "optout"


@pytest.mark.parametrize("text", HUMAN_REPLIES)
def test_the_simulators_small_talk_is_not_an_opt_out(text: str) -> None:
    assert detect(text, DEFAULT_OPTOUT_KEYWORDS).verdict == "none"


@given(st.text())
def test_the_fast_fold_is_normalize_text(text: str) -> None:
    assert fold(text) == normalize_text(text)


_PUNCT = st.sampled_from(["!", "?", ".", ",", "...", " ", "  ", "!!", "😀", "\n"])


@given(st.sampled_from(COMMANDS + PHRASES), _PUNCT, _PUNCT, st.booleans())
def test_case_accents_and_punctuation_never_change_a_verdict(phrase: str, before: str, after: str, upper: bool) -> None:
    accented = phrase.replace("nao", "não").replace("numero", "número")
    text = before + (accented.upper() if upper else accented.capitalize()) + after
    assert detect(text).verdict == "optout"


@given(st.text(alphabet=st.characters(categories=["Ll", "Lu", "Nd", "Zs", "Po"]), max_size=80))
def test_any_text_gets_a_verdict_and_an_opt_out_names_its_words(text: str) -> None:
    d = detect(text)
    assert d.verdict in ("optout", "ambiguous", "none")
    if d.verdict != "none":
        assert d.phrase is not None and f" {d.phrase} " in f" {normalize_text(text)} "
