"""Human cadence and the message guards, end to end through the simulator: read before replying, "typing…" for
a time that grows with the text (bounded) while no request waits for it, think delays inside the bounds, the
metadata every outgoing message carries, and no echo / no repeat."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from mirage.engine import cadence
from mirage.engine.text import normalize_text
from mirage.integrations.evolution.client import EvolutionClient
from tests.runtime.conftest import Harness

DELAYS = (3000, 9000)


def test_a_reply_marks_what_it_answers_read_then_shows_typing_then_sends_after_a_time_that_grows_with_its_length(
    make_harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, Any, datetime]] = []
    real_read, real_presence, real_send = (
        EvolutionClient.mark_read,
        EvolutionClient.send_presence,
        EvolutionClient.send_text,
    )
    h: Harness | None = None

    def now() -> datetime:
        assert h is not None
        return h.clock.now()

    def mark_read(self: EvolutionClient, instance: str, keys: list[dict[str, Any]], **kw: Any) -> Any:
        calls.append(("read", [k["id"] for k in keys], now()))
        return real_read(self, instance, keys, **kw)

    def send_presence(
        self: EvolutionClient, instance: str, number: str, presence: str, delay_ms: int, **kw: Any
    ) -> Any:
        calls.append(("presence", (number, presence, delay_ms), now()))
        return real_presence(self, instance, number, presence, delay_ms, **kw)

    def send_text(self: EvolutionClient, instance: str, number: str, text: str, **kw: Any) -> Any:
        sent = real_send(self, instance, number, text, **kw)
        calls.append(("send", (text, kw.get("delay_ms"), sent.id, number), now()))
        return sent

    monkeypatch.setattr(EvolutionClient, "mark_read", mark_read)
    monkeypatch.setattr(EvolutionClient, "send_presence", send_presence)
    monkeypatch.setattr(EvolutionClient, "send_text", send_text)
    h = make_harness(exchanges=(3, 3), delays=DELAYS)
    assert h.tick()["created"] == 1
    h.run_until(h.clock.now() + timedelta(minutes=20), tick_every=timedelta(hours=1))
    [r] = h.rows("select id, status::text, script, conversation_id from t_rounds")
    assert r["status"] == "done"
    rows = h.rows(
        "select body, meta, round_id, conversation_id, wa_msg_id from t_messages "
        "where direction = 'out' order by (meta->>'step')::int"
    )
    assert [m["meta"]["step"] for m in rows] == list(range(6))
    sends = [c for c in calls if c[0] == "send"]
    typings = [c for c in calls if c[0] == "presence"]
    assert [s[1][0] for s in sends] == [m["body"] for m in rows]
    assert len(typings) == len(sends)
    for i, m in enumerate(rows):
        meta = m["meta"]
        assert meta["app_origin"] == "bot" and meta["round_id"] == str(r["id"]) == str(m["round_id"])
        assert meta["kind"] == r["script"][i] and meta["topic"] == "futebol"
        assert m["conversation_id"] == r["conversation_id"]
        assert DELAYS[0] <= meta["think_ms"] <= DELAYS[1]
        typing = cadence.typing_ms(m["body"], True)
        assert meta["typing_ms"] == typing == min(12_000, max(1_000, 60 * len(m["body"])))
        # "typing…" shown to the receiver with no blocking delay, then the text with no Evolution `delay` either:
        # no request (so no worker) waits for the typing time; RQ's scheduler waits instead.
        presence, send = typings[i], sends[i]
        assert presence[1] == (send[1][3], "composing", 0)  # to the receiver
        assert send[1][1] is None
        assert calls.index(presence) < calls.index(send)
        # the text leaves the typing time after "typing…" began (RQ keeps whole seconds: up to 1 s later)
        assert timedelta(milliseconds=typing) <= send[2] - presence[2] <= timedelta(milliseconds=typing + 1_000)
        if i == 0:
            assert calls.index(presence) == 0 or calls[calls.index(presence) - 1][0] == "send"  # nothing to read
            continue
        # the reply job marked the message it answers read, right before "typing…"
        before = calls[calls.index(presence) - 1]
        assert before[:2] == ("read", [rows[i - 1]["wa_msg_id"]]) and before[2] == presence[2]
    read = {m.id: m.read for m in h.sim.world.messages.values()}
    assert [read[m["wa_msg_id"]] for m in rows] == [True] * 5 + [False]  # nobody answers the goodbye


def test_rounds_never_echo_the_last_message_nor_repeat_a_text_of_the_week(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(exchanges=(3, 3), delays=DELAYS, pause=(1, 2), max_rounds=3)
    h.run_until(h.clock.now() + timedelta(hours=2), tick_every=timedelta(minutes=2))
    rows = h.rows(
        "select round_id, body, meta from t_messages where direction = 'out' and status <> 'cancelled' "
        "order by round_id, (meta->>'step')::int"
    )
    assert h.count("select count(*) as n from t_rounds where status = 'done'") >= 3
    bodies = [normalize_text(m["body"]) for m in rows]
    assert len(bodies) == len(set(bodies))  # the persona banks hold 2 phrases per kind: guards forced new texts
    for a, b in pairwise(rows):
        if a["round_id"] == b["round_id"]:
            assert normalize_text(a["body"]) != normalize_text(b["body"])
