"""The one seam between rounds and message text: `prepare_text` (reads, in the round's transaction) and
`write_text` (compose(), outside any transaction).

`prepare_text` gathers what one step's text needs: the sender's persona, the round's topic, the conversation's
last HISTORY messages, what the conversation sent in its no-repeat window, the message just received and the
tenant's model (its encrypted key and base_url, the conversation's model and temperature; None when nothing is
configured); the rows in one statement (`db.message_text.text_inputs`, ADR 0056). `write_text` calls
`mirage.integrations.openai.compose`: through the model when there is one (with the client's timeout, bounded
retries and offline fallback), else the offline generator (tests, the demo, simulation). It runs with no
transaction open, so a slow model holds no row lock and no idle transaction (ADR 0042). The text's source,
tokens and any fallback reasons go into the message's meta.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import psycopg

from mirage.config.types import Daypart
from mirage.db import message_text
from mirage.db.openai_access import conversation_llm_config_of
from mirage.engine.generation import STEPS, Line, LLMConfig, Step, Voice, recent_set
from mirage.engine.generation.guards import normalized
from mirage.engine.rounds import NO_REPEAT_DAYS, Send
from mirage.engine.view import ConversationView, Persona, Topic
from mirage.integrations.openai import compose
from mirage.jobs import runtime

Conn = psycopg.Connection[Any]

HISTORY = 20  # the conversation's last messages compose() sees (the prompt takes the last few; none repeats)
OFFLINE_RETRIES = 16  # fresh offline draws when a text still breaks the round's rule (it never should)

# The voice of a number without a persona: the offline generator's built-in pt-BR banks.
DEFAULT_VOICE = Voice(name="Tio", style="", emoji_rate=0.3, greetings={}, phrases={})


@dataclass(frozen=True)
class TextRequest:
    """Everything one step's text depends on, read in the round's transaction."""

    kind: Step
    persona: Persona | Voice
    topic: Topic | None
    history: tuple[Line, ...]  # the conversation's last messages, oldest first
    daypart: Daypart
    last_received: str | None  # the message this step answers (None for a round's first)
    recent: tuple[str, ...]  # what the conversation sent in its no-repeat window
    guard_no_echo: bool
    llm: LLMConfig | None  # None: offline
    seed: str  # the step's idempotency key: the same step draws the same offline text


@dataclass(frozen=True)
class Written:
    """A text to send and the meta keys it adds (`text_source`, `tokens`, `text_reasons`, and `model`)."""

    text: str
    meta: dict[str, Any]


def prepare_text(c: Conn, r: dict[str, Any], view: ConversationView, action: Send, now: datetime) -> TextRequest:
    """Read what the text of `action` (a step of round `r`) needs; no model call here."""
    got = message_text.text_inputs(
        c,
        tenant_id=view.tenant_id,
        conversation_id=view.id,
        round_id=r["id"],
        step=action.step,
        since=now - timedelta(days=NO_REPEAT_DAYS),
        limit=HISTORY,
    )
    sender = view.numbers[action.sender]
    persona = view.personas.get(sender.persona_id or "")
    return TextRequest(
        kind=action.kind if action.kind in STEPS else "comment",
        persona=persona if persona is not None else DEFAULT_VOICE,
        topic=next((t for t in view.topics if t.id == r["topic_id"]), None),
        history=tuple(Line(body, mine=who == action.sender) for body, who in got.history),
        daypart=cast(Daypart, r["daypart"]),
        last_received=got.previous,
        recent=tuple(got.recent),
        guard_no_echo=view.settings.guard_no_echo,
        llm=conversation_llm_config_of(got.model),
        seed=f"round:{r['id']}:{action.step}",
    )


def write_text(req: TextRequest) -> Written | None:
    """The text for `req`: compose() through the model when one is configured, else offline; None when no text
    passes the round's rule (no echo, nothing the conversation sent in its no-repeat window) after the retries.

    May take seconds (the model, its retries): call it with no transaction open.
    """
    rng = runtime.rng(req.seed)  # seeded per run under `mirage simulate`
    avoid = recent_set((*req.recent, *((req.last_received,) if req.guard_no_echo and req.last_received else ())))
    llm, tokens = req.llm, 0
    reasons: list[str] = []
    for _ in range(1 + OFFLINE_RETRIES):
        out = compose(req.kind, req.persona, req.topic, req.history, req.daypart, rng, llm, avoid=avoid)
        tokens += out.tokens
        reasons += out.reasons
        written = normalized(out.text)
        if written and written not in avoid:  # engine.rounds.text_allowed, on the set normalised once
            meta: dict[str, Any] = {"text_source": out.source, "tokens": tokens}
            if reasons:
                meta["text_reasons"] = reasons
            if out.source == "openai" and llm is not None:
                meta["model"] = llm.model
            return Written(out.text, meta)
        reasons.append(f"round:{out.source}_not_fresh")
        llm = None  # compose's guards passed but the round's rule did not: only offline draws are retried
    return None
