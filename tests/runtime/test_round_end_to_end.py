"""One round end to end: tick -> planned round -> steps queued, claimed, sent through the simulator, delivered to
the other bot by webhook, turn passed, until goodbye."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from mirage.jobs.queues import job_key
from tests.runtime.conftest import Harness


def test_a_round_runs_its_script_turn_by_turn_through_the_simulator(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(exchanges=(2, 2))
    assert h.tick()["created"] == 1
    h.run_until(h.clock.now() + timedelta(minutes=15), tick_every=timedelta(minutes=30))
    rounds = h.rows("select status::text, exchanges_done, abort_reason, number_a_id, number_b_id from t_rounds")
    assert len(rounds) == 1 and rounds[0]["status"] == "done", rounds
    sent = h.rows(
        "select body, status::text, meta, from_number_id, to_number_id, wa_msg_id, conversation_id, round_id "
        "from t_messages where direction = 'out' and idempotency_key is not null order by (meta->>'step')::int"
    )
    assert [m["meta"]["kind"] for m in sent] == ["greeting", "question", "answer", "goodbye"]
    assert all(m["status"] in ("sent", "delivered", "read") and m["wa_msg_id"] for m in sent)
    speakers = [m["from_number_id"] for m in sent]
    assert speakers[0] == speakers[2] != speakers[1] == speakers[3]
    assert all(m["meta"]["app_origin"] == "bot" and m["round_id"] and m["conversation_id"] for m in sent)
    assert h.sends() == 4
    # no duplicate rows for our own sends: the send.message webhooks folded into the outbox rows
    assert h.count("select count(*) as n from t_messages where direction = 'out'") == 4
    received = h.rows("select meta from t_messages where direction = 'in' order by created_at")
    assert len(received) == 4 and all("round_id" in m["meta"] for m in received)


def test_only_the_other_bots_copy_of_a_message_gets_a_follow_up_job(make_harness: Callable[..., Harness]) -> None:
    """Our own send's `send.message` echo folds into its outbox row: on_message would only say "ours", so the webhook
    enqueues nothing for it; the receiver's copy passes the turn."""
    h = make_harness(exchanges=(2, 2))
    assert h.tick()["created"] == 1
    h.run_until(h.clock.now() + timedelta(minutes=15), tick_every=timedelta(minutes=30))
    messages = h.rows("select id::text, direction::text from t_messages")
    followed = {m["direction"]: 0 for m in messages}
    for m in messages:
        followed[m["direction"]] += bool(h.redis.exists(f"rq:job:{job_key('onmsg:' + m['id'])}"))
    assert followed == {"out": 0, "in": 4}
