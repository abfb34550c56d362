"""Runtime effects: enqueued after commit, under deterministic ids, into the real Redis queues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from rq import Queue

from mirage.jobs.queues import INSTANCES, ROUNDS, job_key
from mirage.reconcile.apply import default_enqueue
from mirage.reconcile.effects import DEPROVISION, PROVISION, REPROVISION, RESCHEDULE, effects
from mirage.reconcile.service import load_desired, make_plan
from mirage.reconcile.state import read_for
from tests.reconcile.helpers import edit, mirage

Conn = psycopg.Connection[Any]


def _jobs(redis: redis_lib.Redis, name: str) -> list[Any]:
    q = Queue(name, connection=redis)
    return [q.fetch_job(i) for i in q.job_ids]


def _apply(fleet: Path, *extra: str) -> str:
    result = mirage("apply", fleet, "--yes", *extra)
    assert result.exit_code == 0, result.output
    return result.stdout


def _numbers(conn: Conn) -> dict[str, dict[str, Any]]:
    rows = {r["key"]: r for r in conn.execute("select id, key, applied_hash, session_id from t_numbers").fetchall()}
    conn.rollback()
    return rows


def test_new_numbers_are_provisioned_after_commit_with_deterministic_ids(
    env: Conn, fleet: Path, redis: redis_lib.Redis
) -> None:
    out = _apply(fleet)
    assert "Runtime jobs enqueued: 3 (of 3" in out
    numbers = _numbers(env)
    expected = {
        job_key(f"provision:{n['id']}:{n['applied_hash'].removeprefix('sha256:')[:12]}") for n in numbers.values()
    }
    jobs = _jobs(redis, INSTANCES)
    assert {j.id for j in jobs} == expected
    assert {j.func_name for j in jobs} == {PROVISION}
    assert {j.args[0] for j in jobs} == {str(n["id"]) for n in numbers.values()}
    assert not Queue(ROUNDS, connection=redis).job_ids  # a new conversation has nothing to reschedule


def test_an_unchanged_reapply_enqueues_nothing(env: Conn, fleet: Path, redis: redis_lib.Redis) -> None:
    _apply(fleet)
    before = {name: Queue(name, connection=redis).job_ids for name in (INSTANCES, ROUNDS)}
    out = _apply(fleet)
    assert "No changes." in out and "enqueued" not in out
    assert {name: Queue(name, connection=redis).job_ids for name in (INSTANCES, ROUNDS)} == before


def test_the_same_effects_enqueued_twice_are_queued_once(env: Conn, fleet: Path, redis: redis_lib.Redis) -> None:
    desired = load_desired(fleet, None)
    plan = make_plan(env, desired)
    todo = effects(plan, read_for(env, desired))
    env.rollback()
    assert [default_enqueue(e) for e in todo] == [True] * 3
    assert [default_enqueue(e) for e in todo] == [False] * 3
    assert len(Queue(INSTANCES, connection=redis).job_ids) == 3


def _give_zeca_a_session(conn: Conn) -> str:
    zeca = _numbers(conn)["zeca"]
    session = conn.execute(
        "insert into t_sessions (tenant_id, number_id, instance_name, base_url)"
        " select tenant_id, id, 'padaria-zeca', 'http://evolution.test:8080' from t_numbers where id = %s returning id",
        [zeca["id"]],
    ).fetchone()
    conn.execute("update t_numbers set session_id = %s where id = %s", [session["id"], zeca["id"]])
    conn.commit()
    return str(session["id"])


def _provision_all(conn: Conn, *, but: tuple[str, ...] = ()) -> None:
    """Give every other number a live session, as its provision job would: the runtime has caught up, so the
    next apply enqueues only what its plan implies (the runtime sync adds nothing)."""
    conn.execute(
        "insert into t_sessions (tenant_id, number_id, instance_name, base_url)"
        " select n.tenant_id, n.id, 'padaria-' || n.key, 'http://evolution.test:8080' from t_numbers n"
        " where n.session_id is null and not (n.key = any(%s))",
        [list(but)],
    )
    conn.execute(
        "update t_numbers n set session_id = s.id, status = 'qr' from t_sessions s"
        " where s.number_id = n.id and s.deprovisioned_at is null"
    )
    conn.commit()


def test_a_number_removed_from_yaml_has_its_live_session_deprovisioned(
    env: Conn, fleet: Path, redis: redis_lib.Redis
) -> None:
    _apply(fleet)
    session = _give_zeca_a_session(env)
    _provision_all(env)
    redis.flushdb()
    edit(
        fleet / "padaria" / "numbers.yaml",
        '  zeca:\n    label: Zeca reserva\n    number: "+5511999990003"\n    active: true\n',
        "",
    )
    _apply(fleet, "--allow-delete")
    [job] = _jobs(redis, INSTANCES)
    assert (job.id, job.func_name, job.args) == (job_key(f"deprovision:{session}"), DEPROVISION, (session,))
    row = env.execute("select number_id from t_sessions where id = %s", [session]).fetchone()
    env.rollback()
    assert row["number_id"] is None  # the session row stays for its history


def test_a_deactivated_number_keeps_its_session_and_reactivating_provisions_it(
    env: Conn, fleet: Path, redis: redis_lib.Redis
) -> None:
    _apply(fleet)
    _give_zeca_a_session(env)
    _provision_all(env)
    redis.flushdb()
    edit(
        fleet / "padaria" / "numbers.yaml",
        'Zeca reserva\n    number: "+5511999990003"\n    active: true',
        'Zeca reserva\n    number: "+5511999990003"\n    active: false',
    )
    _apply(fleet)
    assert _jobs(redis, INSTANCES) == []
    edit(fleet / "padaria" / "numbers.yaml", "active: false", "active: true")
    _apply(fleet)
    [job] = _jobs(redis, INSTANCES)
    assert job.func_name == PROVISION and job.args == (str(_numbers(env)["zeca"]["id"]),)


def test_a_new_phone_number_moves_the_instance_in_one_ordered_job(
    env: Conn, fleet: Path, redis: redis_lib.Redis
) -> None:
    _apply(fleet)
    session = _give_zeca_a_session(env)
    _provision_all(env)
    redis.flushdb()
    edit(fleet / "padaria" / "numbers.yaml", '"+5511999990003"', '"+5511999990004"')
    _apply(fleet)
    # one job, so no second worker can provision before the old session is retired
    [job] = _jobs(redis, INSTANCES)
    assert (job.func_name, job.args) == (REPROVISION, (str(_numbers(env)["zeca"]["id"]), session))


def test_a_new_phone_number_on_a_number_without_session_is_just_provisioned(
    env: Conn, fleet: Path, redis: redis_lib.Redis
) -> None:
    _apply(fleet)
    _provision_all(env, but=("zeca",))
    redis.flushdb()
    edit(fleet / "padaria" / "numbers.yaml", '"+5511999990003"', '"+5511999990004"')
    _apply(fleet)
    [job] = _jobs(redis, INSTANCES)
    assert (job.func_name, job.args) == (PROVISION, (str(_numbers(env)["zeca"]["id"]),))


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("conversations/bom-dia.yaml", "mode: pair", "mode: random"),
        ("tenant.yaml", 'afternoon: {start: "14:00", end: "17:30"}', 'afternoon: {start: "13:00", end: "17:30"}'),
        ("conversations/bom-dia.yaml", "  tempo: {seed: O calor que está fazendo}\n", ""),
    ],
    ids=["conversation row", "schedule from tenant defaults", "topic deleted"],
)
def test_a_changed_conversation_is_rescheduled_once(
    env: Conn, fleet: Path, redis: redis_lib.Redis, file: str, old: str, new: str
) -> None:
    _apply(fleet)
    redis.flushdb()
    edit(fleet / "padaria" / file, old, new)
    _apply(fleet, "--allow-delete")
    conv = env.execute("select id from t_conversations").fetchone()
    env.rollback()
    [job] = _jobs(redis, ROUNDS)
    assert job.func_name == RESCHEDULE and job.args == (str(conv["id"]),)
    assert job.id.startswith(job_key(f"reschedule:{conv['id']}:"))


def test_a_deleted_conversation_is_rescheduled_with_its_tenant(env: Conn, fleet: Path, redis: redis_lib.Redis) -> None:
    _apply(fleet)
    conv = env.execute("select id, tenant_id from t_conversations").fetchone()
    env.rollback()
    redis.flushdb()
    (fleet / "padaria" / "conversations" / "bom-dia.yaml").unlink()
    _apply(fleet, "--allow-delete")
    [job] = _jobs(redis, ROUNDS)
    assert job.id == job_key(f"reschedule:{conv['id']}:deleted")
    assert job.args == (str(conv["id"]),) and job.kwargs == {"tenant_id": str(conv["tenant_id"])}


def test_a_tenant_moved_to_another_evolution_server_provisions_its_active_numbers_there(
    env: Conn, fleet: Path, redis: redis_lib.Redis
) -> None:
    _apply(fleet)
    _provision_all(env)
    redis.flushdb()
    edit(fleet / "padaria" / "tenant.yaml", "http://evolution.test:8080", "http://evolution-2.test:8080")
    _apply(fleet)
    jobs = _jobs(redis, INSTANCES)
    numbers = _numbers(env)
    active = {str(n["id"]) for n in env.execute("select id from t_numbers where active").fetchall()}
    env.rollback()
    assert {j.func_name for j in jobs} == {PROVISION}
    assert {j.args[0] for j in jobs} == active and len(jobs) == len(active) <= len(numbers)
    _apply(fleet)  # nothing changed since: nothing more to move
    assert len(_jobs(redis, INSTANCES)) == len(jobs)
