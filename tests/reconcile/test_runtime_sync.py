"""The runtime converges level-triggered: jobs lost after an apply's commit are found again and enqueued."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from rq import Queue

from mirage.jobs.cron import SCHEDULE
from mirage.jobs.queues import INSTANCES, ROUNDS, job_key
from mirage.jobs.sync import sync_runtime
from mirage.reconcile.effects import DEPROVISION, PROVISION, RESCHEDULE
from mirage.reconcile.sync import NO_CONVERSATION
from mirage.settings import get_settings
from tests.reconcile.helpers import edit, mirage
from tests.webhooks.helpers import SilentRedis

Conn = psycopg.Connection[Any]
DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


def _jobs(redis: redis_lib.Redis, name: str) -> list[Any]:
    q = Queue(name, connection=redis)
    return [q.fetch_job(i) for i in q.job_ids]


def _apply_with_redis_down(fleet: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, *extra: str) -> str:
    monkeypatch.setenv("REDIS_URL", DOWN)
    try:
        result = mirage("apply", fleet, "--yes", *extra)
    finally:
        monkeypatch.setenv("REDIS_URL", redis_url)
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    return result.stderr


def _provision_ids(conn: Conn) -> set[str]:
    rows = conn.execute("select id, applied_hash from t_numbers where active").fetchall()
    conn.rollback()
    return {job_key(f"provision:{r['id']}:{r['applied_hash'].removeprefix('sha256:')[:12]}") for r in rows}


def test_an_apply_with_redis_down_says_how_to_recover_and_a_plain_reapply_enqueues_the_lost_jobs(
    env: Conn, fleet: Path, redis: redis_lib.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = _apply_with_redis_down(fleet, monkeypatch, redis_url)
    assert "3 runtime job(s) could not be enqueued" in err
    assert "start Redis" in err and "run `mirage apply` again" in err and "Traceback" not in err
    assert _jobs(redis, INSTANCES) == []

    plan = mirage("plan", fleet)
    assert plan.exit_code == 0, plan.output
    assert "No changes." in plan.stdout
    assert "Runtime: 3 numbers waiting for provisioning" in plan.stderr  # stdout stays the plan alone

    again = mirage("apply", fleet, "--yes")
    assert again.exit_code == 0, again.output
    assert "No changes." in again.stdout and "Runtime jobs enqueued to catch up: 3." in again.stdout
    jobs = _jobs(redis, INSTANCES)
    assert {j.id for j in jobs} == _provision_ids(env) and {j.func_name for j in jobs} == {PROVISION}

    once_more = mirage("apply", fleet, "--yes")  # queued already: nothing twice
    assert "enqueued" not in once_more.stdout and len(_jobs(redis, INSTANCES)) == 3


def test_the_cron_sync_enqueues_what_a_lost_apply_left_behind_once(
    env: Conn, fleet: Path, redis: redis_lib.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sync_runtime in [p.func for p in SCHEDULE]
    _apply_with_redis_down(fleet, monkeypatch, redis_url)
    assert sync_runtime() == {
        "numbers": 3,
        "sessions": 0,
        "conversations": 0,
        "enqueued": 3,
        "already_queued": 0,
    }
    assert {j.id for j in _jobs(redis, INSTANCES)} == _provision_ids(env)
    assert sync_runtime()["enqueued"] == 0


def test_numbers_caught_up_with_their_sessions_are_no_drift(env: Conn, fleet: Path, redis: redis_lib.Redis) -> None:
    assert mirage("apply", fleet, "--yes").exit_code == 0
    env.execute(
        "insert into t_sessions (tenant_id, number_id, instance_name, base_url)"
        " select tenant_id, id, 'padaria-' || key, 'http://evolution.test:8080' from t_numbers"
    )
    env.execute("update t_numbers n set session_id = s.id, status = 'qr' from t_sessions s where s.number_id = n.id")
    env.commit()
    redis.flushdb()
    plan = mirage("plan", fleet)
    assert "No changes." in plan.stdout and "Runtime:" not in plan.output
    assert sync_runtime()["enqueued"] == 0 and _jobs(redis, INSTANCES) == []


def test_sessions_of_removed_numbers_and_stale_rounds_are_synced(
    env: Conn, fleet: Path, redis: redis_lib.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mirage("apply", fleet, "--yes").exit_code == 0
    zeca = env.execute("select id, tenant_id from t_numbers where key = 'zeca'").fetchone()
    session = env.execute(
        "insert into t_sessions (tenant_id, number_id, instance_name, base_url)"
        " values (%s, %s, 'padaria-zeca', 'http://evolution.test:8080') returning id",
        [zeca["tenant_id"], zeca["id"]],
    ).fetchone()
    conv = env.execute("select id, tenant_id, applied_hash from t_conversations").fetchone()
    env.execute(
        "insert into t_rounds (tenant_id, conversation_id, status) values (%s, %s, 'planned'), (%s, null, 'active')",
        [conv["tenant_id"], conv["id"], conv["tenant_id"]],
    )
    env.commit()
    edit(fleet / "padaria" / "numbers.yaml", '  zeca:\n    label: Zeca reserva\n    number: "+5511999990003"\n', "")
    edit(fleet / "padaria" / "conversations" / "bom-dia.yaml", "mode: pair", "mode: random")
    _apply_with_redis_down(fleet, monkeypatch, redis_url, "--allow-delete")  # the deprovision is lost

    plan = mirage("plan", fleet)
    assert "No changes." in plan.stdout
    assert "1 session of a removed number waiting for deprovisioning" in plan.stderr
    assert "2 conversations with rounds planned under an older configuration" in plan.stderr

    sync_runtime()
    [deprovision] = [j for j in _jobs(redis, INSTANCES) if j.func_name == DEPROVISION]
    assert deprovision.id == job_key(f"deprovision:{session['id']}")
    reschedules = {(j.args, tuple(sorted(j.kwargs.items()))) for j in _jobs(redis, ROUNDS)}
    assert {j.func_name for j in _jobs(redis, ROUNDS)} == {RESCHEDULE}
    assert reschedules == {((str(conv["id"]),), ()), ((NO_CONVERSATION,), (("tenant_id", str(conv["tenant_id"])),))}


def test_an_apply_killed_right_after_its_commit_leaves_drift_that_plan_shows_and_the_cron_sync_closes(
    env: Conn, fleet: Path, redis: redis_lib.Redis, secrets_env: dict[str, str]
) -> None:
    """SIGKILL, not an exception: the apply process dies between its commit and its enqueues (its Redis hangs)."""
    silent = SilentRedis()
    child_env = {
        **os.environ,
        **secrets_env,
        "REDIS_URL": silent.url,
        "MIRAGE_DOTENV": "",
        "MIRAGE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirage", "apply", str(fleet), "--yes"],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while _committed_numbers(env) < 3:  # the apply's transaction is visible: it committed
            assert proc.poll() is None, f"apply exited {proc.returncode} before its commit was seen"
            assert time.monotonic() < deadline, "the apply never committed"
            time.sleep(0.02)
        assert proc.poll() is None  # still waiting on the hung Redis: no job went out
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        silent.close()
    assert _jobs(redis, INSTANCES) == []

    plan = mirage("plan", fleet)
    assert plan.exit_code == 0 and "No changes." in plan.stdout
    assert "Runtime: 3 numbers waiting for provisioning" in plan.stderr

    assert sync_runtime()["enqueued"] == 3
    assert {j.id for j in _jobs(redis, INSTANCES)} == _provision_ids(env)


def _committed_numbers(conn: Conn) -> int:
    row = conn.execute("select count(*) as n from t_numbers").fetchone()
    conn.rollback()
    return int(row["n"]) if row else 0
