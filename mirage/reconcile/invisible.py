"""Invisible characters made visible: a plan pasted into a pull request shows every bidi control and zero-width mark.

Every format character (Unicode category Cf: bidi embeddings, overrides and isolates, zero-width space and
joiners, the byte-order mark, soft hyphens, tag characters) is printed as its escape, `\\u202e`, so a name
cannot reorder or hide text in a review (what GitHub warns about as hidden Unicode). In text, a zero-width
joiner between two emoji stays: it only glues one emoji sequence (a family, a flag) and hides nothing.
"""

from __future__ import annotations

import re
import unicodedata

# Unicode's format characters (category Cf, as of Unicode 15; tests check this list against unicodedata).
_FORMAT = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
_ZWJ = "\u200d"


def _is_emoji_part(ch: str) -> bool:
    """A pictograph, a skin-tone modifier or the emoji variation selector: what a joiner may glue."""
    return unicodedata.category(ch) in ("So", "Sk") or ch == "\ufe0f"


def _escape(ch: str) -> str:
    return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"


def reveal(text: str) -> str:
    """`text` with every format character written as its escape (emoji joiners aside); idempotent."""
    if not _FORMAT.search(text):
        return text

    def sub(m: re.Match[str]) -> str:
        i = m.start()
        if m[0] == _ZWJ and 0 < i < len(text) - 1 and _is_emoji_part(text[i - 1]) and _is_emoji_part(text[i + 1]):
            return m[0]
        return _escape(m[0])

    return _FORMAT.sub(sub, text)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON writes a character beyond the BMP as its UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def reveal_json(text: str) -> str:
    """JSON text with every format character inside its strings escaped; it decodes to the same values."""
    return _FORMAT.sub(lambda m: _json_escape(m[0]), text)
