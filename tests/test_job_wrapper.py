"""Every job wears the one job wrapper: producer's log context, Temporary errors retried, Permanent ones not."""

from __future__ import annotations

import importlib
import json
import logging
import re
from pathlib import Path

import pytest
import redis as redis_lib
from rq.job import Job, JobStatus

from mirage.errors import PermanentError, TemporaryError
from mirage.jobs.cron import SCHEDULE
from mirage.jobs.queues import EVENTS, enqueue_unique, job_key, queue
from mirage.jobs.worker import MirageSimpleWorker as SimpleWorker
from mirage.jobs.wrapper import is_job, job
from mirage.logs import JsonFormatter, log_context

ROOT = Path(__file__).resolve().parents[1]
calls: list[str] = []


@job
def temporary_then_done(marker: str) -> str:
    """Fails with a TemporaryError the first time, then succeeds (a retried job)."""
    logging.getLogger("tests.job").info("job ran")
    calls.append(marker)
    if len(calls) == 1:
        raise TemporaryError("Evolution answered 503")
    return "done"


@job
def permanently_wrong() -> None:
    raise PermanentError("no Evolution URL for tenant acme")


def _job_paths() -> set[str]:
    """Every job Mirage enqueues by dotted path (in its source) or schedules (mirage cron)."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "mirage").rglob("*.py"))
    found = set(re.findall(r"\"(mirage\.jobs\.[a-z_]+\.[a-z_]+)\"", text))
    found |= {f"{p.func.__module__}.{p.func.__name__}" for p in SCHEDULE}
    return found


def test_mirage_enqueues_jobs_of_several_modules() -> None:
    modules = {path.rsplit(".", 1)[0] for path in _job_paths()}
    assert {"mirage.jobs.instances", "mirage.jobs.conversations", "mirage.jobs.sync"} <= modules


@pytest.mark.parametrize("path", sorted(_job_paths()))
def test_every_job_mirage_enqueues_wears_the_job_wrapper(path: str) -> None:
    module, name = path.rsplit(".", 1)
    assert is_job(getattr(importlib.import_module(module), name)), f"{path} lacks @mirage.jobs.wrapper.job"


class _Lines(logging.Handler):
    """Formats each record as Mirage's JSON line when it is emitted (the context lives in contextvars)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_a_temporary_error_is_retried_and_every_line_carries_the_producers_correlation_id(
    redis: redis_lib.Redis,
) -> None:
    calls.clear()
    with log_context("cid-42", tenant="acme"):
        assert enqueue_unique(EVENTS, f"{__name__}.temporary_then_done", job_id="t:1", args=["x"], conn=redis)
    worker = SimpleWorker([queue(EVENTS, redis)], connection=redis)
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        worker.work(burst=True, with_scheduler=False)
        j = Job.fetch(job_key("t:1"), connection=redis)
        assert j.get_status() == JobStatus.SCHEDULED and j.retries_left == 4  # RQ retries it with backoff
        queue(EVENTS, redis).enqueue_job(j)  # due now (the test does not wait for the backoff)
        worker.work(burst=True, with_scheduler=False)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert Job.fetch(job_key("t:1"), connection=redis).get_status() == JobStatus.FINISHED
    assert calls == ["x", "x"]
    ran = [line for line in handler.lines if line["msg"] in ("job ran", "job failed, will retry")]
    assert [line["msg"] for line in ran] == ["job ran", "job failed, will retry", "job ran"]
    for line in ran:
        assert line["correlation_id"] == "cid-42" and line["tenant"] == "acme"
        assert line["job"] == "temporary_then_done" and line["job_id"] == job_key("t:1")


def test_a_permanent_error_fails_at_once_with_its_reason(redis: redis_lib.Redis) -> None:
    assert enqueue_unique(EVENTS, f"{__name__}.permanently_wrong", job_id="p:1", conn=redis)
    SimpleWorker([queue(EVENTS, redis)], connection=redis).work(burst=True, with_scheduler=False)
    j = Job.fetch(job_key("p:1"), connection=redis)
    assert j.get_status() == JobStatus.FAILED and j.retries_left == 0
    assert "no Evolution URL for tenant acme" in (j.latest_result().exc_string or "")  # type: ignore[union-attr]
