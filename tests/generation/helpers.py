"""The example tenants' personas and topics, and a month of one pair talking, for the generation tests."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mirage.config import Fleet, load_fleet
from mirage.config.conversations import Topic
from mirage.config.personas import Persona
from mirage.config.types import DAYPARTS, Daypart
from mirage.engine.generation import Composed, Line, Step

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [
    ("padaria-do-ze", "tio-ze", "tio-juca", "balcao-e-forno"),
    ("agencia-aurora", "tio", "tia", "papo-de-familia"),
]


@cache
def fleet() -> Fleet:
    return load_fleet(ROOT / "tenants.d")


def persona(tenant: str, key: str) -> Persona:
    return fleet().tenants[tenant].personas[key]


def topics(tenant: str, conversation: str) -> dict[str, Topic]:
    return dict(fleet().tenants[tenant].conversations[conversation].topics)


@dataclass(frozen=True)
class Said:
    day: int
    daypart: Daypart
    step: Step
    speaker: int
    out: Composed


Composer = Callable[[Step, Persona, Topic | None, list[Line], Daypart, random.Random], Composed]


def talk_for_a_month(compose: Composer, tenant: str, a: str, b: str, conversation: str, seed: int) -> list[Said]:
    """30 days, three dayparts, two rounds each: greetings, 2-4 exchanges, goodbyes; the whole history is passed."""
    people = (persona(tenant, a), persona(tenant, b))
    subjects = list(topics(tenant, conversation).values())
    rng = random.Random(seed)
    said: list[Said] = []
    for day in range(30):
        for part in DAYPARTS:
            for r in range(2):
                topic = subjects[(day * 6 + r) % len(subjects)]
                script: list[tuple[Step, int]] = [("greeting", 0), ("greeting", 1)]
                for x in range(rng.randint(2, 4)):
                    script += [("question" if x % 2 else "comment", 0), ("answer", 1)]
                script += [("goodbye", 0), ("goodbye", 1)]
                for step, who in script:
                    history = [Line(s.out.text, s.speaker == who) for s in said]
                    said.append(Said(day, part, step, who, compose(step, people[who], topic, history, part, rng)))
    return said
