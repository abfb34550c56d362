"""Keyword normalisation (shared with the opt-out detector): any case, any accents, same keyword."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirage.engine.text import contains_keyword, normalize_keywords, normalize_text

ACCENTS = {"a": "áàâãä", "e": "éêè", "i": "íî", "o": "óôõö", "u": "úüù", "c": "ç"}


@given(st.text())
def test_normalising_is_idempotent(s: str) -> None:
    assert normalize_text(normalize_text(s)) == normalize_text(s)


@given(st.text())
def test_normalised_text_has_no_upper_case_accents_or_extra_spaces(s: str) -> None:
    n = normalize_text(s)
    assert n == n.casefold()
    assert not any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", n))
    assert n == " ".join(n.split())


@given(st.text(alphabet="aeioucnqrst ", min_size=1), st.data())
def test_case_and_accents_do_not_matter(word: str, data: st.DataObject) -> None:
    variant = "".join(
        data.draw(st.sampled_from([c, c.upper(), *ACCENTS.get(c, ""), *ACCENTS.get(c, "").upper()])) for c in word
    )
    assert normalize_text(variant) == normalize_text(word)


@given(st.lists(st.text()))
def test_keyword_lists_are_normalised_deduplicated_and_keep_order(words: list[str]) -> None:
    out = normalize_keywords(words)
    assert len(out) == len(set(out)) and all(out)
    assert out == [w for w in dict.fromkeys(normalize_text(x) for x in words) if w]


@pytest.mark.parametrize(
    ("message", "keyword"),
    [
        ("SAIR", "sair"),
        ("Por favor, NÃO QUERO mais!!", "nao quero"),
        ("pode parar.", "parar"),
        ("sairei daqui a pouco", None),  # whole words only
        ("stop", "stop"),
        ("Bom dia, tio!", None),
    ],
)
def test_keywords_match_whole_words_in_any_case_and_accents(message: str, keyword: str | None) -> None:
    assert contains_keyword(message, ["SAIR", "PARAR", "STOP", "não quero"]) == keyword
