"""Text normalisation shared by configuration (opt-out keyword lists) and the runtime opt-out detector."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_NOT_WORD = re.compile(r"[^\w]+|_+")


def normalize_text(text: str) -> str:
    """Lower-case `text`, strip accents, turn punctuation into spaces and collapse whitespace.

    "  Não QUERO!! " -> "nao quero". Two strings that a person would read as the same word match after this.
    """
    return " ".join(_NOT_WORD.sub(" ", _fold(_fold(text))).split())


def _fold(text: str) -> str:
    # Twice: case folding can produce characters that decompose further (and the reverse).
    decomposed = unicodedata.normalize("NFKD", text).casefold()
    return "".join(ch for ch in unicodedata.normalize("NFKD", decomposed) if not unicodedata.combining(ch))


def normalize_keywords(keywords: Iterable[str]) -> list[str]:
    """Normalise every keyword, drop empty ones and duplicates, keep the first occurrence's order."""
    seen: dict[str, None] = {}
    for k in keywords:
        n = normalize_text(k)
        if n:
            seen.setdefault(n, None)
    return list(seen)


def contains_keyword(text: str, keywords: Iterable[str]) -> str | None:
    """The first normalised keyword that appears in `text` as whole words, or None."""
    padded = f" {normalize_text(text)} "
    for k in keywords:
        n = normalize_text(k)
        if n and f" {n} " in padded:
            return n
    return None
