"""`mirage worker` runs the EVENTS queue in the log context of the request that enqueued the job; `mirage serve`
serves the app; an event whose normalisation fails is still stored and normalised later by a job."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import psycopg
import pytest
import redis as redis_lib
from click.testing import CliRunner
from rq import Queue

from mirage import backends
from mirage.cli import cli
from mirage.jobs.queues import EVENTS
from mirage.jobs.worker import queue_names, run_worker
from mirage.logs import configure_logging
from mirage.settings import get_settings
from tests.webhooks.helpers import WEBHOOK, Seeded, SilentRedis, events, incoming_text, messages

Conn = psycopg.Connection[Any]


def _defer_one(client: httpx.Client, db: Conn, acme: Seeded) -> dict[str, Any]:
    """Make normalising fail for real: the cached session still points at a number deleted meanwhile."""
    assert client.post(WEBHOOK, content=incoming_text("warm the cache"), headers=acme.headers()).status_code == 200
    db.execute("delete from t_numbers where id = %s", (acme.number_id,))
    db.commit()
    r = client.post(
        WEBHOOK,
        content=incoming_text("after the delete", "LATE1"),
        headers={**acme.headers(), "x-request-id": "req-deferred"},
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_an_event_that_fails_to_normalise_is_stored_and_a_job_normalises_it(
    client: httpx.Client, db: Conn, acme: Seeded, redis: redis_lib.Redis
) -> None:
    out = _defer_one(client, db, acme)
    assert out["status"] == "stored" and out["reason"] == "deferred:ForeignKeyViolation"
    (job_id,) = Queue(EVENTS, connection=redis).job_ids
    assert job_id == f"reprocess_{out['id']}"
    assert [m["body"] for m in messages(db)] == ["warm the cache"]

    buf = io.StringIO()
    configure_logging("DEBUG", "json", buf)
    assert run_worker(["events"], burst=True, simple=True, scheduler=False, connection=redis)

    (late,) = [e for e in events(db) if str(e["id"]) == out["id"]]
    assert (late["status"], late["processed_at"] is not None) == ("processed", True)
    assert [m["body"] for m in messages(db)] == ["warm the cache", "after the delete"]
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    (done,) = [line for line in lines if line["msg"] == "reprocessed messages.upsert"]
    assert done["correlation_id"] == "req-deferred" and done["tenant"] == str(acme.tenant_id)
    assert done["job_id"] == job_id and done["instance"] == acme.instance


def test_mirage_worker_burst_runs_queued_jobs(
    client: httpx.Client, db: Conn, acme: Seeded, redis: redis_lib.Redis
) -> None:
    out = _defer_one(client, db, acme)
    result = CliRunner().invoke(cli, ["worker", "--queue", "events", "--burst", "--simple", "--no-scheduler"])
    assert result.exit_code == 0, result.output
    assert [e["status"] for e in events(db) if str(e["id"]) == out["id"]] == ["processed"]


def test_reprocessing_twice_changes_nothing(
    client: httpx.Client, db: Conn, acme: Seeded, redis: redis_lib.Redis
) -> None:
    from mirage.jobs.events import reprocess_event

    out = _defer_one(client, db, acme)
    assert reprocess_event(out["id"]) == "processed"
    assert reprocess_event(out["id"]) == "processed"  # already done: left alone
    assert len(messages(db)) == 2


def test_an_event_deferred_while_redis_hung_is_picked_up_by_the_sweep(
    client: httpx.Client, db: Conn, acme: Seeded, redis: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirage.jobs.events import reprocess_pending

    silent = SilentRedis()
    monkeypatch.setattr(backends, "REDIS_TIMEOUT_S", 0.2)
    try:
        with monkeypatch.context() as m:
            m.setenv("REDIS_URL", silent.url)
            get_settings.cache_clear()
            out = _defer_one(client, db, acme)  # stored; its job could not be enqueued
    finally:
        silent.close()
    get_settings.cache_clear()
    assert out["status"] == "stored" and Queue(EVENTS, connection=redis).job_ids == []

    assert reprocess_pending(older_than_s=0) == 1
    assert run_worker(["events"], burst=True, simple=True, scheduler=False, connection=redis)
    assert [e["status"] for e in events(db) if str(e["id"]) == out["id"]] == ["processed"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ((), ("mirage-instances", "mirage-events", "mirage-rounds", "mirage-messages")),
        (("events", "mirage-rounds"), ("mirage-events", "mirage-rounds")),
    ],
)
def test_worker_queue_names(given: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert queue_names(given) == expected


def test_an_unknown_queue_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["worker", "--queue", "bogus", "--burst"])
    assert result.exit_code == 2 and "bogus" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_mirage_serve_answers_webhooks(database_url: str, db: Conn, acme: Seeded, workers: int) -> None:
    port = _free_port()
    env = {**os.environ, "MIRAGE_LOG_FORMAT": "json", "MIRAGE_LOG_LEVEL": "INFO"}
    cmd = [sys.executable, "-m", "mirage", "serve", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "mirage serve did not become ready"
            time.sleep(0.1)
        r = httpx.post(url + WEBHOOK, content=incoming_text("via serve"), headers=acme.headers(), timeout=5)
        assert r.status_code == 200 and r.json()["status"] == "processed"
        assert r.headers["x-request-id"] and "server" not in r.headers
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert b"/api/webhooks/evolution" in err  # the start-up line
    assert acme.secret.encode() not in err
    assert [m["body"] for m in messages(db)] == ["via serve"]
