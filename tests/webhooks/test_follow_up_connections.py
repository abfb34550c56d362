"""The webhook service's follow-ups keep one Redis connection per thread, not one per enqueue."""

from __future__ import annotations

import gc
import os
import uuid

import pytest

from mirage.jobs import queues
from mirage.web import webhooks


def open_sockets() -> int:
    """Sockets this process holds open now."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


@pytest.mark.parametrize("enqueues", [200])
def test_follow_ups_reuse_a_connection_per_thread_instead_of_opening_one_per_enqueue(redis, enqueues: int) -> None:  # type: ignore[no-untyped-def]
    """Each follow-up used to make its own Redis client, whose connection only the garbage collector closed: a
    busy webhook service held thousands and Redis refused new clients at 10,000 (bench/engine.py, 1,000
    conversations). With the collector off, the follow-up threads' sockets stay at one each."""
    gc.collect()
    gc.disable()
    try:
        before = open_sockets()
        done = [webhooks._FOLLOW_UPS.submit(webhooks._follow_up, str(uuid.uuid4())) for _ in range(enqueues)]
        assert all(f.result(30) for f in done)
        assert open_sockets() - before <= webhooks.FOLLOW_UP_THREADS
    finally:
        gc.enable()
    assert redis.llen(f"rq:queue:{queues.ROUNDS}") == enqueues
