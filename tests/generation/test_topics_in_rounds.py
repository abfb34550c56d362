"""The rounds the tick plans follow the one topic rule (docs/generation.md#topics): the conversation's strategy
(rotate, random, weighted, sticky), `topic_refresh_minutes` counted from when the latest rounds' topic was first
picked, and active dates in the tenant's zone."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from mirage.engine.rounds import PlanState, RoundPlan, RoundRecord, plan_conversation
from mirage.engine.view import ConversationView
from tests.engine.helpers import view

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # 09:00 in São Paulo, a Monday, inside the morning window
TOPICS = [
    {"id": "t-a", "key": "a-futebol", "seed": "o jogo", "weight": 1},
    {"id": "t-b", "key": "b-churrasco", "seed": "o churrasco", "weight": 1},
    {"id": "t-c", "key": "c-novela", "seed": "a novela", "weight": 8},
]


def conversation(strategy: str, refresh: int = 180, topics: list[dict[str, Any]] | None = None) -> ConversationView:
    return replace(view(topics=topics or TOPICS), topic_strategy=strategy, topic_refresh_minutes=refresh)


def round_at(minutes_ago: int, topic_id: str) -> RoundRecord:
    at = NOW - timedelta(minutes=minutes_ago)
    return RoundRecord(date(2026, 12, 6), "evening", 1, "done", at, at + timedelta(minutes=5), topic_id)


def planned_topic(v: ConversationView, state: PlanState, seed: int = 1) -> str | None:
    plan = plan_conversation(v, state, NOW, random.Random(seed))
    assert isinstance(plan, RoundPlan), plan
    return plan.topic_id


@pytest.mark.parametrize("strategy", ["rotate", "random", "weighted", "sticky"])
def test_the_topic_of_the_latest_rounds_is_kept_until_the_refresh_interval_passes(strategy: str) -> None:
    fresh = PlanState(rounds=[round_at(170, "t-a"), round_at(90, "t-b")])  # t-b picked 90 minutes ago
    assert all(planned_topic(conversation(strategy), fresh, seed) == "t-b" for seed in range(20))


def test_rotate_moves_on_to_the_next_topic_in_key_order_once_the_interval_passed() -> None:
    # t-b has been the topic since its first round of the run, 200 minutes ago, though its last round was 90 minutes ago
    stale = PlanState(rounds=[round_at(300, "t-a"), round_at(200, "t-b"), round_at(90, "t-b")])
    assert planned_topic(conversation("rotate"), stale) == "t-c"


def test_weighted_plans_follow_the_weights_and_random_ignores_them() -> None:
    counts = {
        strategy: Counter(planned_topic(conversation(strategy), PlanState(), seed) for seed in range(600))
        for strategy in ("weighted", "random")
    }
    assert counts["weighted"]["t-c"] > 400  # weight 8 of 10
    assert all(150 <= counts["random"][t] <= 250 for t in ("t-a", "t-b", "t-c"))


def test_a_topic_outside_its_active_dates_in_the_tenants_zone_is_never_planned() -> None:
    # (the day itself is the tenant's: tests/generation/test_topics.py counts the last day in its zone)
    topics = [
        {"id": "t-a", "key": "a-natal", "seed": "o Natal", "active_to": date(2026, 12, 6)},
        {"id": "t-b", "key": "b-sempre", "seed": "a vida"},
    ]
    v = conversation("rotate", topics=topics)
    assert {planned_topic(v, PlanState(), seed) for seed in range(20)} == {"t-b"}
