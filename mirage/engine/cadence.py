"""Human cadence: how long a bot "thinks" before answering and how long it "types" (pure; rng passed in).

Think delays are log-normal inside [min, max]: most replies come after a typical pause, a few take much
longer, as people do. `humanize: false` draws uniformly instead. Typing time grows with the text length, as
Evolution's own bots do (length x time per character), bounded so a long text never types for minutes.
"""

from __future__ import annotations

import math
import random

TYPING_MS_PER_CHAR = 60  # ~200 characters a minute on a phone keyboard
TYPING_MIN_MS = 1_000
TYPING_MAX_MS = 12_000
_SIGMA = 0.5  # spread of the log-normal, in e-folds


def think_delay_ms(min_ms: int, max_ms: int, humanize: bool, rng: random.Random) -> int:
    """A pause before the next message, always inside [min_ms, max_ms]."""
    low, high = max(0, min(min_ms, max_ms)), max(0, max(min_ms, max_ms))
    if high == low:
        return low
    if not humanize:
        return rng.randint(low, high)
    # Centred on the geometric middle of the range (the arithmetic one when the floor is 0), clamped to it.
    median = math.sqrt(max(low, 1) * high) if low > 0 else (low + high) / 2
    value = rng.lognormvariate(math.log(median), _SIGMA)
    return int(min(high, max(low, round(value))))


def typing_ms(text: str, humanize: bool) -> int:
    """How long "typing…" shows before `text` is sent: 0 without humanize, else ∝ length within the bounds."""
    if not humanize:
        return 0
    return int(min(TYPING_MAX_MS, max(TYPING_MIN_MS, len(text) * TYPING_MS_PER_CHAR)))


def max_message_ms(max_delay_ms: int, humanize: bool) -> int:
    """The longest one message of a round can take to go out (think + type), for round budgets."""
    return max(0, max_delay_ms) + (TYPING_MAX_MS if humanize else 0)
