"""Topic choice: active date ranges in the tenant's zone, refresh, and the rotate / random / weighted / sticky rules."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirage.config.conversations import Topic
from mirage.engine.generation import TopicPick, active_keys, choose_topic

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
TZ = "America/Sao_Paulo"
TOPICS = {
    "churrasco": Topic(seed="O churrasco de domingo"),
    "futebol": Topic(seed="O clássico", weight=3),
    "tempo": Topic(seed="A chuva da semana"),
}


def test_active_keys_honour_inclusive_date_ranges() -> None:
    topics = {
        "natal": Topic(seed="Ceia", active_from=date(2026, 12, 1), active_to=date(2026, 12, 26)),
        "junina": Topic(seed="Quentão", active_from=date(2027, 6, 1)),
        "sempre": Topic(seed="Tempo"),
    }
    assert active_keys(topics, date(2026, 12, 26)) == ["natal", "sempre"]
    assert active_keys(topics, date(2026, 12, 27)) == ["sempre"]
    assert active_keys(topics, date(2027, 6, 1)) == ["junina", "sempre"]


def test_the_last_active_day_is_counted_in_the_tenants_time_zone() -> None:
    topics = {"natal": Topic(seed="Ceia", active_to=date(2026, 12, 26)), "sempre": Topic(seed="Tempo")}
    late_on_the_26th = datetime(2026, 12, 27, 2, 30, tzinfo=UTC)  # 23:30 on the 26th in São Paulo
    current = TopicPick("natal", late_on_the_26th - timedelta(minutes=5))
    assert choose_topic(topics, "rotate", current, late_on_the_26th, TZ, 180, random.Random(1)).key == "natal"
    assert choose_topic(topics, "rotate", current, late_on_the_26th, "UTC", 180, random.Random(1)).key == "sempre"


@pytest.mark.parametrize("strategy", ["rotate", "random", "weighted", "sticky"])
def test_a_fresh_topic_is_kept_until_the_refresh_interval_passes(strategy: str) -> None:
    current = TopicPick("futebol", NOW - timedelta(minutes=179))
    kept = choose_topic(TOPICS, strategy, current, NOW, TZ, 180, random.Random(1))  # type: ignore[arg-type]
    assert kept.key == "futebol" and not kept.changed


@pytest.mark.parametrize("strategy", ["rotate", "random", "weighted"])
def test_after_the_refresh_interval_another_topic_is_chosen(strategy: str) -> None:
    current = TopicPick("futebol", NOW - timedelta(minutes=180))
    for seed in range(20):
        pick = choose_topic(TOPICS, strategy, current, NOW, TZ, 180, random.Random(seed))  # type: ignore[arg-type]
        assert pick.key != "futebol" and pick.changed and pick.since == NOW


def test_rotate_walks_the_topics_in_key_order_and_wraps() -> None:
    seen, current = [], None
    for i in range(6):
        current = choose_topic(TOPICS, "rotate", current, NOW + timedelta(hours=4 * i), TZ, 180, random.Random(0))
        seen.append(current.key)
    assert seen == ["churrasco", "futebol", "tempo", "churrasco", "futebol", "tempo"]


def test_sticky_keeps_its_topic_until_it_is_no_longer_active() -> None:
    topics = {**TOPICS, "natal": Topic(seed="Ceia", active_to=date(2026, 12, 26))}
    current = TopicPick("natal", NOW - timedelta(days=10))
    assert choose_topic(topics, "sticky", current, NOW, TZ, 180, random.Random(0)).key == "natal"
    after = choose_topic(topics, "sticky", current, datetime(2026, 12, 28, 12, tzinfo=UTC), TZ, 180, random.Random(0))
    assert after.key == "tempo" and after.changed  # the next key after "natal"


def test_weighted_follows_the_weights_and_random_ignores_them() -> None:
    def spread(strategy: str) -> Counter[str]:
        rng = random.Random(7)
        return Counter(
            choose_topic(TOPICS, strategy, None, NOW, TZ, 180, rng).key
            for _ in range(3000)  # type: ignore[arg-type,misc]
        )

    weighted, uniform = spread("weighted"), spread("random")
    assert 0.5 < weighted["futebol"] / 3000 < 0.7  # 3 of 5
    assert 0.28 < uniform["futebol"] / 3000 < 0.39  # 1 of 3


def test_no_active_topic_gives_none() -> None:
    topics = {"junina": Topic(seed="Quentão", active_from=date(2027, 6, 1))}
    pick = choose_topic(topics, "rotate", None, NOW, TZ, 180, random.Random(0))
    assert pick.key is None and pick.since is None


@given(
    strategy=st.sampled_from(["rotate", "random", "weighted", "sticky"]),
    minutes=st.integers(0, 60 * 24 * 400),
    current=st.sampled_from([None, "churrasco", "natal", "gone"]),
    seed=st.integers(0, 2**16),
)
def test_the_pick_is_always_an_active_topic_and_fresh_picks_are_kept(
    strategy: str, minutes: int, current: str | None, seed: int
) -> None:
    topics = {**TOPICS, "natal": Topic(seed="Ceia", active_from=date(2026, 12, 1), active_to=date(2026, 12, 26))}
    now = NOW + timedelta(minutes=minutes)
    held = TopicPick(current, now - timedelta(minutes=30)) if current else None
    pick = choose_topic(topics, strategy, held, now, TZ, 180, random.Random(seed))
    today = now.astimezone(ZoneInfo(TZ)).date()
    assert pick.key in active_keys(topics, today)
    if held is not None and held.key in active_keys(topics, today):
        assert pick.key == held.key and not pick.changed
