"""`reschedule_conversation`: rounds planned under an old configuration are aborted so the scheduler re-plans.

The job runs in process under rq's SimpleWorker against the real Redis and Postgres, enqueued by apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from rq import Queue

from mirage.jobs.conversations import reschedule_conversation
from mirage.jobs.queues import ROUNDS
from mirage.jobs.worker import MirageSimpleWorker as SimpleWorker
from tests.reconcile.helpers import edit, mirage

Conn = psycopg.Connection[Any]


def _rounds(conn: Conn) -> dict[str, str]:
    """One round per status of the conversation, plus an outreach round (no conversation) left alone."""
    conn.rollback()
    conv = conn.execute("select id, tenant_id from t_conversations").fetchone()
    out = {}
    for status in ("planned", "active", "done"):
        row = conn.execute(
            "insert into t_rounds (tenant_id, conversation_id, status) values (%s, %s, %s) returning id",
            [conv["tenant_id"], conv["id"], status],
        ).fetchone()
        out[status] = str(row["id"])
    row = conn.execute(
        "insert into t_rounds (tenant_id, target_id, status)"
        " select tenant_id, id, 'active' from t_outreach_targets limit 1 returning id"
    ).fetchone()
    out["outreach"] = str(row["id"])
    conn.commit()
    return out


def _status(conn: Conn, ids: dict[str, str]) -> dict[str, str]:
    rows = {str(r["id"]): r["status"] for r in conn.execute("select id, status from t_rounds").fetchall()}
    conn.rollback()
    return {name: rows[i] for name, i in ids.items()}


def _work(redis: redis_lib.Redis) -> None:
    SimpleWorker([Queue(ROUNDS, connection=redis)], connection=redis).work(burst=True)


def _apply(fleet: Path, *extra: str) -> None:
    result = mirage("apply", fleet, "--yes", *extra)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("mode: pair", "mode: random", {"planned": "aborted", "active": "active"}),
        ("mode: pair", "mode: pair\nactive: false", {"planned": "aborted", "active": "aborted"}),
    ],
    ids=["changed", "deactivated"],
)
def test_applying_a_conversation_change_aborts_the_rounds_it_invalidates(
    env: Conn, fleet: Path, redis: redis_lib.Redis, old: str, new: str, expected: dict[str, str]
) -> None:
    _apply(fleet)
    ids = _rounds(env)
    redis.flushdb()
    edit(fleet / "padaria" / "conversations" / "bom-dia.yaml", old, new)
    _apply(fleet)
    _work(redis)
    assert _status(env, ids) == {**expected, "done": "done", "outreach": "active"}


def test_a_deleted_conversation_has_its_orphaned_rounds_aborted(env: Conn, fleet: Path, redis: redis_lib.Redis) -> None:
    _apply(fleet)
    ids = _rounds(env)
    redis.flushdb()
    (fleet / "padaria" / "conversations" / "bom-dia.yaml").unlink()
    _apply(fleet, "--allow-delete")
    _work(redis)
    assert _status(env, ids) == {"planned": "aborted", "active": "aborted", "done": "done", "outreach": "active"}


def test_rescheduling_is_idempotent_and_ignores_unknown_conversations(env: Conn, fleet: Path) -> None:
    _apply(fleet)
    ids = _rounds(env)
    conv = env.execute("select id from t_conversations").fetchone()
    env.rollback()
    assert reschedule_conversation(str(conv["id"])) == {"conversation": "active", "aborted": 1}
    assert reschedule_conversation(str(conv["id"])) == {"conversation": "active", "aborted": 0}
    assert reschedule_conversation("00000000-0000-4000-8000-000000000000") == {"conversation": "missing", "aborted": 0}
    assert _status(env, ids)["active"] == "active"
