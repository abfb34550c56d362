"""Guards on every outgoing text, whatever wrote it: clean what can be cleaned, name what cannot be sent.

`clean` strips what a model adds around a message (role prefixes, wrapping quotes, markdown, line breaks);
`violations` lists why a cleaned text must not go out (length bounds of the step, links, phone numbers,
e-mail addresses, @mentions, a repeat of a recent message). An empty list means the text may be sent.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from functools import lru_cache

from mirage.engine.generation.model import LENGTH_BOUNDS, Step
from mirage.engine.text import normalize_text

_ROLE_WORDS = (
    r"assistant|assistente|user|usu[aá]rio|system|sistema|bot|ai|ia|gpt|chatgpt|resposta|answer|reply|"
    r"mensagem|message|texto|text|sa[ií]da|output"
)
_ROLE_PREFIX = re.compile(rf"^\s*[\[(*_]*\s*(?:{_ROLE_WORDS})\s*[\])*_]*\s*[:：\-–—>]\s*", re.IGNORECASE)
_QUOTES = (('"', '"'), ("“", "”"), ("'", "'"), ("«", "»"), ("‘", "’"), ("„", "“"), ("`", "`"))
_MD_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|~~|\*|`+)(?=\S)(.+?)(?<=\S)\1")
_MD_LINE = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*•]\s+|\d+[.)]\s+)", re.MULTILINE)
_SPACES = re.compile(r"\s+")

_LINK = re.compile(
    r"(?i)(?:\b(?:https?|ftp)://|\bwww\.|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|br|io|ly|me|app|info|biz|co|"
    r"xyz|gov|edu|site|online|shop|link|gg|tv)\b(?:/\S*)?)"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_MENTION = re.compile(r"(?<![\w@])@\w{2,}")
_PHONE = re.compile(r"(?<!\w)\+?\d(?:[\s().-]{0,2}\d){7,}")


def clean(text: str, names: Iterable[str] = ()) -> str:
    """`text` without role prefixes ("Assistente:", "Tio Zé:"), wrapping quotes, markdown or line breaks."""
    out = text.strip()
    name_prefix = _name_prefix(tuple(n for n in names if n))
    for _ in range(3):  # "**Assistente:** "Bom dia"" needs several passes
        before = out
        out = _MD_LINK.sub(r"\1 \2", out)
        out = _MD_LINE.sub("", out)
        out = _MD_EMPHASIS.sub(r"\2", out)
        out = _ROLE_PREFIX.sub("", out)
        if name_prefix is not None:
            out = name_prefix.sub("", out)
        out = _SPACES.sub(" ", out).strip()
        out = _unquote(out)
        if out == before:
            break
    return out


def violations(text: str, step: Step, recent: Collection[str] = ()) -> list[str]:
    """Why `text` (already cleaned) must not be sent as step `step`; `recent` holds normalised recent texts."""
    found: list[str] = []
    if not text.strip():
        return ["empty"]
    low, high = LENGTH_BOUNDS[step]
    if len(text) < low:
        found.append("too_short")
    if len(text) > high:
        found.append("too_long")
    if _EMAIL.search(text):
        found.append("email")
    if _LINK.search(_EMAIL.sub(" ", text)):
        found.append("link")
    if _PHONE.search(text):
        found.append("phone")
    if _MENTION.search(_EMAIL.sub(" ", text)):
        found.append("mention")
    if recent and normalized(text) in recent:
        found.append("repeat")
    return found


@lru_cache(maxsize=8192)
def normalized(text: str) -> str:
    """normalize_text, cached: the same recent messages are compared again and again."""
    return normalize_text(text)


def recent_set(texts: Iterable[str]) -> frozenset[str]:
    """The normalised form of each text, for `violations(..., recent=...)` and the offline generator's `avoid`."""
    return frozenset(n for n in (normalized(t) for t in texts) if n)


def _unquote(text: str) -> str:
    for a, b in _QUOTES:
        if len(text) < 2 or not (text.startswith(a) and text.endswith(b)):
            continue
        balanced = text.count(a) == 2 if a == b else text.count(a) == 1 and text.count(b) == 1
        if balanced:  # one pair around the whole text, not quotes inside it
            return text[len(a) : -len(b)].strip()
    return text


@lru_cache(maxsize=256)
def _name_prefix(names: tuple[str, ...]) -> re.Pattern[str] | None:
    if not names:
        return None
    alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"^\s*[*_]*(?:{alts})[*_]*\s*[:：\-–—>]\s*", re.IGNORECASE)
