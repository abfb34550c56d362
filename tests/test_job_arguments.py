"""Every job refuses a malformed argument for good: one failure with the reason, no retries, nothing written."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import redis as redis_lib
from rq.job import Job, JobStatus

from mirage.jobs.queues import EVENTS, INSTANCES, ROUNDS, enqueue_unique, job_key, queue
from mirage.jobs.worker import MirageSimpleWorker as SimpleWorker
from tests.reconcile.helpers import snapshot


@pytest.mark.parametrize(
    ("queue_name", "func", "args", "reason"),
    [
        (INSTANCES, "mirage.jobs.instances.provision_number", ["not-a-uuid"], "number_id 'not-a-uuid' is not a UUID"),
        (INSTANCES, "mirage.jobs.instances.deprovision_session", ["1; drop table t_sessions"], "session_id"),
        (INSTANCES, "mirage.jobs.instances.refresh_session", [""], "session_id '' is not a UUID"),
        (
            INSTANCES,
            "mirage.jobs.instances.reprovision_number",
            ["9b2f1c3e-0000-4000-8000-000000000001", "nope"],
            "session_id 'nope' is not a UUID",
        ),
        (ROUNDS, "mirage.jobs.conversations.reschedule_conversation", ["x"], "conversation_id 'x' is not a UUID"),
        (EVENTS, "mirage.jobs.events.reprocess_event", ["../etc"], "event_id '../etc' is not a UUID"),
    ],
)
def test_a_malformed_job_argument_fails_once_with_its_reason_and_writes_nothing(
    db: psycopg.Connection[Any], redis: redis_lib.Redis, queue_name: str, func: str, args: list[str], reason: str
) -> None:
    before = snapshot(db)
    assert enqueue_unique(queue_name, func, job_id=f"bad:{func}", args=args, conn=redis)  # retries 5 by default
    SimpleWorker([queue(queue_name, redis)], connection=redis).work(burst=True, with_scheduler=False)
    job = Job.fetch(job_key(f"bad:{func}"), connection=redis)
    assert job.get_status() == JobStatus.FAILED
    assert job.retries_left == 0
    assert reason in (job.latest_result().exc_string or "")  # type: ignore[union-attr]
    assert snapshot(db) == before
