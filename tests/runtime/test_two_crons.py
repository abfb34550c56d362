"""Scale-out: two `mirage cron` schedulers enqueue every periodic job twice, every minute, and nothing doubles."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from mirage.jobs.cron import build_scheduler
from tests.runtime.conftest import Harness


def test_two_cron_schedulers_at_once_double_no_round_and_no_message(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(exchanges=(2, 2))
    crons = [build_scheduler(h.redis), build_scheduler(h.redis)]
    end = h.clock.now() + timedelta(minutes=20)
    enqueued = 0
    while h.clock.now() < end:
        minute = h.clock.now() + timedelta(minutes=1)
        for scheduler in crons:  # both schedulers fire every periodic job each (virtual) minute
            for cron_job in scheduler.get_jobs():
                cron_job.enqueue(h.redis)
                enqueued += 1
        while h.clock.now() < minute:
            h.settle()
            upcoming = h.next_scheduled()
            h.clock.set(min(minute, max(upcoming or minute, h.clock.now())))
    h.settle()
    assert enqueued == 20 * sum(len(s.get_jobs()) for s in crons)
    rounds = h.rows("select status::text from t_rounds")
    assert rounds == [{"status": "done"}]
    out = h.rows("select idempotency_key, status::text from t_messages where direction = 'out'")
    assert len(out) == 4 and len({m["idempotency_key"] for m in out}) == 4
    assert h.sends() == 4  # four POSTs to the simulator for the round's four messages
