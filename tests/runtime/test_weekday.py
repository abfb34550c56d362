"""A whole weekday in virtual time: cron ticks every 5 minutes, workers run every job when it is due, the
simulator carries the messages and posts the webhooks back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, time, timedelta
from itertools import pairwise

from mirage.engine.calendar import contains, zone
from tests.runtime.conftest import MONDAY_0800_SP, Harness

SP = zone("America/Sao_Paulo")
WINDOWS = {"morning": (time(8), time(11, 30)), "afternoon": (time(14), time(17)), "evening": (time(19), time(21, 30))}
QUIET = (time(22), time(7))
HOURLY, DELAYS = 6, (4000, 25000)


def test_a_weekday_runs_rounds_only_in_windows_in_script_order_within_bounds_and_limits(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(exchanges=(2, 3), hourly=HOURLY, delays=DELAYS, pause=(20, 40), max_rounds=2)
    start = MONDAY_0800_SP - timedelta(hours=2)  # 06:00, still quiet hours
    h.clock.set(start)
    h.run_until(start + timedelta(hours=17, minutes=30), tick_every=timedelta(minutes=5))  # to 23:30

    rounds = h.rows(
        "select id, status::text, daypart, created_at, abort_reason, script from t_rounds order by created_at"
    )
    assert len(rounds) >= 4, rounds
    per_window = Counter(r["daypart"] for r in rounds)
    assert set(per_window) <= set(WINDOWS) and max(per_window.values()) <= 2
    for r in rounds:
        local = r["created_at"].astimezone(SP)
        lo, hi = WINDOWS[r["daypart"]]
        assert local.weekday() == 0 and lo <= local.time() < hi, (r["daypart"], local)
        assert r["status"] == "done", r

    sent = h.rows(
        "select round_id, from_number_id, body, status::text, sent_at, meta from t_messages "
        "where direction = 'out' order by round_id, (meta->>'step')::int"
    )
    assert sent and all(m["status"] in ("sent", "delivered", "read") for m in sent)
    by_round: dict[object, list[dict[str, object]]] = {}
    for m in sent:
        by_round.setdefault(m["round_id"], []).append(m)
    for r in rounds:
        steps = by_round[r["id"]]
        assert [m["meta"]["kind"] for m in steps] == r["script"]  # script order, every step once
        speakers = [m["from_number_id"] for m in steps]
        assert all(a != b for a, b in pairwise(speakers))  # turn by turn
    for m in sent:
        assert DELAYS[0] <= m["meta"]["think_ms"] <= DELAYS[1]
        assert datetime.fromisoformat(m["meta"]["claimed_at"]) >= datetime.fromisoformat(m["meta"]["planned_at"])
        assert not contains(*QUIET, m["sent_at"].astimezone(SP).time())  # zero sends in quiet hours
    hourly = Counter((m["from_number_id"], m["sent_at"].replace(minute=0, second=0, microsecond=0)) for m in sent)
    assert max(hourly.values()) <= HOURLY
    assert len(sent) == sum(len(r["script"]) for r in rounds) == h.sends()
