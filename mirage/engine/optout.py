"""Opt-out detection: is this reply from a person an opt-out, only maybe one, or not one (pure; ADR 0036).

Texts are folded as `mirage.engine.text.normalize_text` does (case, accents and punctuation ignored) and matched
as whole words. Three kinds of words:

* **phrases** say it in full ("me tira dessa lista", "não me mande mais", "unsubscribe"): an opt-out anywhere;
* **commands** (SAIR, PARAR, STOP, CANCELAR, "não quero" and the policy's keywords): an opt-out when they are
  the whole message (politeness aside: "Sair, por favor!"); inside a longer message ("vou sair mais tarde")
  only maybe one, so the contact is paused for a person to decide;
* **hints** ("para com isso", "chega", a lone "não"): maybe an opt-out.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mirage.engine.text import normalize_text

Verdict = Literal["optout", "ambiguous", "none"]

# Whole-message commands: an opt-out alone, a pause inside a longer message.
COMMANDS: tuple[str, ...] = (
    "sair",
    "parar",
    "pare",
    "parem",
    "stop",
    "cancelar",
    "cancela",
    "cancele",
    "descadastrar",
    "nao quero",
    "nao quero mais",
    "remover",
    "unsubscribe",
    "stopall",
    "optout",
)
# Opt-outs alone (the SMS standard words) that are ordinary words in a sentence ("at the end of the day").
SOLO_COMMANDS: tuple[str, ...] = ("sai", "cancel", "end", "quit", "remove")
# Opt-outs wherever they appear.
PHRASES: tuple[str, ...] = (
    # pt-BR
    "me tira dessa lista",
    "me tira da lista",
    "me tire dessa lista",
    "me tire da lista",
    "me tira desse grupo",
    "me tira dessa",
    "me remove da lista",
    "me remova da lista",
    "me remove dessa lista",
    "me descadastra",
    "me descadastre",
    "descadastrar",
    "descadastro",
    "sair da lista",
    "quero sair",
    "tira meu numero",
    "tire meu numero",
    "remove meu numero",
    "remova meu numero",
    "apaga meu numero",
    "apague meu numero",
    "nao me mande mais",
    "nao me manda mais",
    "nao me mandem mais",
    "nao mande mais",
    "nao manda mais",
    "nao envie mais",
    "nao me envie mais",
    "nao me mande mensagem",
    "nao me mande mensagens",
    "nao quero mais receber",
    "nao quero receber",
    "nao quero mais mensagens",
    "nao quero mais mensagem",
    "nao quero mensagens",
    "nao quero mais contato",
    "nao me procure mais",
    "nao entre mais em contato",
    "para de me mandar",
    "pare de me mandar",
    "parem de me mandar",
    "para de mandar",
    "pare de mandar",
    "parem de mandar",
    "parar de mandar",
    "parar de me mandar",
    "para de mandar mensagem",
    "pare de mandar mensagem",
    "para de me enviar",
    "pare de me enviar",
    "para de me chamar",
    "pare de me chamar",
    "me deixa em paz",
    "me deixe em paz",
    # en
    "unsubscribe",
    "opt out",
    "remove me",
    "take me off",
    "stop messaging me",
    "stop texting me",
    "stop sending",
    "stop contacting me",
    "stop writing to me",
    "do not contact me",
    "don t contact me",
    "dont contact me",
    "do not message me",
    "don t message me",
    "dont message me",
    "don t text me",
    "do not text me",
    "leave me alone",
    "no more messages",
)
# Maybe an opt-out, wherever they appear: pause and ask a person.
HINTS: tuple[str, ...] = (
    "para com isso",
    "pare com isso",
    "para com essas mensagens",
    "quem te deu meu numero",
    "quem deu meu numero",
    "como conseguiu meu numero",
    "nao tenho interesse",
    "sem interesse",
    "vou bloquear",
    "vou te bloquear",
    "vou denunciar",
    "denunciar",
    "spam",
    "not interested",
    "who gave you my number",
    "block you",
    "report you",
    "stop it",
)
# Maybe an opt-out when it is the whole message.
SOLO_HINTS: tuple[str, ...] = ("nao", "para", "no", "nope", "chega", "basta", "chega disso")
# Ignored when deciding whether a command is the whole message ("Sair, por favor!", "STOP thanks").
FILLERS: tuple[str, ...] = (
    "por favor",
    "porfavor",
    "pf",
    "pfv",
    "pfvr",
    "favor",
    "obrigado",
    "obrigada",
    "obg",
    "brigado",
    "grato",
    "grata",
    "valeu",
    "ok",
    "okay",
    "agora",
    "ja",
    "mesmo",
    "please",
    "pls",
    "plz",
    "thanks",
    "thank you",
    "thx",
    "now",
)


@dataclass(frozen=True)
class Detection:
    """The verdict on one text and what matched (normalised), or None for `none`."""

    verdict: Verdict
    phrase: str | None = None


NONE = Detection("none")


Words = tuple[str, ...]
_Index = dict[str, tuple[Words, ...]]


def _index(phrases: Iterable[str]) -> _Index:
    """First word -> the phrases (as word tuples) starting with it, longest first ("nao quero mais" before
    "nao quero")."""
    by_first: dict[str, set[Words]] = {}
    for p in phrases:
        words = tuple(p.split())
        if words:
            by_first.setdefault(words[0], set()).add(words)
    return {w: tuple(sorted(ps, key=lambda x: (-len(x), x))) for w, ps in by_first.items()}


def _at(words: Words, i: int, index: _Index) -> Words | None:
    """The longest phrase of `index` that starts at word `i`, or None."""
    for p in index.get(words[i], ()):
        if words[i : i + len(p)] == p:
            return p
    return None


def _find(words: Words, index: _Index) -> str | None:
    """The first phrase of `index` found anywhere in `words` (whole words), or None."""
    for i in range(len(words)):
        if (p := _at(words, i, index)) is not None:
            return " ".join(p)
    return None


def _strip(words: Words, index: _Index) -> Words:
    """`words` without the phrases of `index`."""
    out: list[str] = []
    i = 0
    while i < len(words):
        p = _at(words, i, index)
        if p is None:
            out.append(words[i])
            i += 1
        else:
            i += len(p)
    return tuple(out)


def _only(words: Words, index: _Index) -> str | None:
    """The first phrase when `words` is nothing but phrases of `index` ("stop", "sair sair"), else None."""
    i, first = 0, None
    while i < len(words):
        p = _at(words, i, index)
        if p is None:
            return None
        first = first or " ".join(p)
        i += len(p)
    return first


class Detector:
    """The word lists for one set of policy keywords, indexed (build once, call `detect` many times)."""

    def __init__(self, keywords: Iterable[str] = ()) -> None:
        extra = tuple(k for k in (normalize_text(k) for k in keywords) if k)
        self._commands = _index(COMMANDS + SOLO_COMMANDS + extra)
        self._inline_commands = _index(COMMANDS + extra)
        self._phrases = _index(PHRASES)
        self._hints = _index(HINTS)
        self._solo_hints = _index(SOLO_HINTS)
        self._fillers = _index(FILLERS)
        # Most messages hold none of these words: one set operation answers them.
        self._firsts = frozenset().union(self._commands, self._phrases, self._hints, self._solo_hints)

    def detect(self, text: str | None) -> Detection:
        """The verdict for one message text (None or empty: `none`)."""
        if not text:
            return NONE
        words = tuple(fold(text).split())
        if not words or self._firsts.isdisjoint(words):
            return NONE
        if phrase := _find(words, self._phrases):
            return Detection("optout", phrase)
        core = _strip(words, self._fillers) or words
        if phrase := _only(core, self._commands):
            return Detection("optout", phrase)
        if phrase := _find(words, self._inline_commands) or _find(words, self._hints):
            return Detection("ambiguous", phrase)
        if phrase := _only(core, self._solo_hints):
            return Detection("ambiguous", phrase)
        return NONE


_NOT_WORD = re.compile(r"[^\w]+|_+")


class _FoldTable(dict[int, str]):
    """Character -> its folded form (normalize_text's NFKD, case fold, marks dropped), filled on first sight.

    Folding is character by character, so translating with this table and then collapsing non-word runs gives
    exactly normalize_text's result, without the Unicode work for characters seen before."""

    def __missing__(self, code: int) -> str:
        folded = normalize_char(chr(code))
        if len(self) < 65_536:  # bounded, whatever text arrives
            self[code] = folded
        return folded


def normalize_char(ch: str) -> str:
    # normalize_text's folding of one character, before word splitting.
    return _fold(_fold(ch))


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text).casefold()
    return "".join(c for c in unicodedata.normalize("NFKD", decomposed) if not unicodedata.combining(c))


_TABLE = _FoldTable()


def fold(text: str) -> str:
    """`normalize_text`, fast: plain ASCII is only lower-cased, other text goes through a per-character table."""
    if text.isascii():
        return " ".join(_NOT_WORD.sub(" ", text.lower()).split())
    return " ".join(_NOT_WORD.sub(" ", text.translate(_TABLE)).split())


@functools.lru_cache(maxsize=256)
def detector(keywords: tuple[str, ...] = ()) -> Detector:
    """The Detector for a policy's keywords (cached: a tenant's keyword lists rarely change)."""
    return Detector(keywords)


def detect(text: str | None, keywords: Iterable[str] = ()) -> Detection:
    """Opt-out verdict for `text` with the built-in pt-BR/en lists plus the policy `keywords`."""
    return detector(keywords if isinstance(keywords, tuple) else tuple(keywords)).detect(text)
