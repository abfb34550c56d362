"""Simulated people: whether and when they answer, and what they say (pt-BR small talk, scripts, opt-outs)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from mirage.engine.optout import detect
from mirage.integrations.evolution_sim.config import HumanConfig
from mirage.integrations.evolution_sim.state import SimContact, digits_of, lid_for


@dataclass(frozen=True)
class Reply:
    text: str
    delay_s: float  # unscaled seconds after the message arrived
    optout: bool


def contact_for(number: str, cfg: HumanConfig) -> SimContact:
    """A stable person for a number: the same name (and @lid addressing or not) every time."""
    digits = digits_of(number)
    h = int(hashlib.sha256(digits.encode()).hexdigest(), 16)
    uses_lid = (h % 10_000) / 10_000 < cfg.lid_probability
    return SimContact(number=digits, name=cfg.names[h % len(cfg.names)], lid=lid_for(digits) if uses_lid else None)


def decide_reply(contact: SimContact, cfg: HumanConfig, rng: random.Random) -> Reply | None:
    """What this person answers to one incoming message, or None (no reply, or they already opted out)."""
    if contact.opted_out:
        return None
    script = cfg.scripts.get(contact.number)
    if script and contact.script_pos < len(script):
        text = script[contact.script_pos]
        contact.script_pos += 1
    elif rng.random() >= cfg.reply_probability:
        return None
    elif rng.random() < cfg.optout_probability:
        text = rng.choice(cfg.optout_replies)
    else:
        text = rng.choice(cfg.replies)
    optout = is_optout(text, cfg)
    contact.opted_out = contact.opted_out or optout
    contact.replies += 1
    thinking = rng.uniform(cfg.min_reply_delay_s, max(cfg.min_reply_delay_s, cfg.max_reply_delay_s))
    typing = len(text) / max(cfg.typing_chars_per_s, 0.1)
    return Reply(text=text, delay_s=thinking + typing, optout=optout)


def is_optout(text: str, cfg: HumanConfig) -> bool:
    """Whether the person means this text as an opt-out: Mirage's detector (mirage.engine.optout) with the people's
    keywords, which may know phrases a tenant's policy does not."""
    return detect(text, cfg.optout_keywords).verdict == "optout"
