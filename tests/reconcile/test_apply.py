"""apply runs in one transaction under an advisory lock: all or nothing, one writer at a time."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from rq import Queue

from mirage.db.outreach import load_policies
from mirage.jobs.queues import INSTANCES, ROUNDS
from mirage.reconcile.apply import LOCK_KEYS, LockBusyError, apply_plan
from mirage.reconcile.service import load_desired, make_plan
from tests.db.helpers import add_auth_user, ensure_auth_users
from tests.reconcile.helpers import count, edit, mirage, snapshot

Conn = psycopg.Connection[Any]


def _plan(conn: Conn, fleet: Path) -> Any:
    desired = load_desired(fleet, None)
    return make_plan(conn, desired), desired


def _apply(conn: Conn, fleet: Path, **kw: Any) -> Any:
    plan, desired = _plan(conn, fleet)
    return apply_plan(plan, conn, desired, **kw)


def _mixed_change(conn: Conn, fleet: Path) -> None:
    """Applied fixture, then YAML that deletes, updates and creates rows across several tables."""
    _apply(conn, fleet)
    p = fleet / "padaria"
    edit(p / "numbers.yaml", "label: Tia Maria", "label: Tia Maria B.")
    edit(p / "numbers.yaml", "  zeca:\n", "  zeca-novo:\n")
    edit(p / "conversations/bom-dia.yaml", "  tempo: {seed: O calor que está fazendo}", "  chuva: {seed: A chuva}")
    edit(p / "tenant.yaml", "daily_limit: 200", "daily_limit: 100")


STEPS = [
    "delete t_topics",
    "delete t_numbers",
    "update t_settings_tenant",
    "update t_numbers",
    "insert t_numbers",
    "insert t_topics",
    "audit",
]


# Faults are injected where they would happen, in the database: a trigger (in a schema of its own, dropped after
# the test) that records each write statement apply sends and raises at the chosen one.
_FAULTS = """
create schema if not exists mirage_test_faults;
create table if not exists mirage_test_faults.steps (n serial primary key, step text not null);
create table if not exists mirage_test_faults.fail_at (step text);
create or replace function mirage_test_faults.record() returns trigger language plpgsql as $$
declare
  here text := case when tg_table_name = 't_applies' then 'audit' else lower(tg_op) || ' ' || tg_table_name end;
begin
  insert into mirage_test_faults.steps (step) values (here);
  if exists (select 1 from mirage_test_faults.fail_at f where f.step = here) then
    raise exception 'injected fault at %', here;
  end if;
  return null;
end
$$;
"""


def _watch_writes(conn: Conn, fail_at: str | None = None) -> None:
    """Record every write statement on the public tables (and fail at `fail_at`), until `_unwatch`."""
    conn.execute(_FAULTS)
    tables = [r["tablename"] for r in conn.execute("select tablename from pg_tables where schemaname = 'public'")]
    for table in tables:
        conn.execute(
            f"create trigger mirage_test_fault before insert or update or delete on public.{table}"
            " for each statement execute function mirage_test_faults.record()"
        )
    if fail_at is not None:
        conn.execute("insert into mirage_test_faults.fail_at values (%s)", [fail_at])
    conn.commit()


def _steps(conn: Conn) -> list[str]:
    rows = conn.execute("select step from mirage_test_faults.steps order by n").fetchall()
    conn.rollback()
    return [r["step"] for r in rows]


def _unwatch(conn: Conn) -> None:
    conn.rollback()
    for r in conn.execute("select tablename from pg_tables where schemaname = 'public'").fetchall():
        conn.execute(f"drop trigger if exists mirage_test_fault on public.{r['tablename']}")
    conn.execute("drop schema if exists mirage_test_faults cascade")
    conn.commit()


@pytest.mark.parametrize("step", STEPS)
def test_a_failure_injected_midway_leaves_every_table_unchanged(
    env: Conn, fleet: Path, redis: redis_lib.Redis, step: str
) -> None:
    _mixed_change(env, fleet)
    redis.flushdb()
    before = snapshot(env)
    _watch_writes(env, fail_at=step)
    try:
        with pytest.raises(psycopg.errors.RaiseException, match=f"injected fault at {step}"):
            _apply(env, fleet, allow_delete=True)
        env.rollback()
        assert _steps(env) == []  # the failed transaction took its own record with it
    finally:
        _unwatch(env)
    assert snapshot(env) == before
    assert redis.dbsize() == 0  # nothing enqueued: effects run only after commit
    result = _apply(env, fleet, allow_delete=True)  # and the same plan then applies cleanly
    assert result.summary.to_dict() == {"add": 2, "change": 2, "destroy": 2}


def test_every_write_step_is_reached_by_the_mixed_change(env: Conn, fleet: Path) -> None:
    _mixed_change(env, fleet)
    _watch_writes(env)
    try:
        _apply(env, fleet, allow_delete=True)
        seen = _steps(env)
    finally:
        _unwatch(env)
    assert set(STEPS) <= set(seen)
    # parents before children for writes, then deletes children first (a cascade never reaches a moved row)
    assert seen.index("update t_numbers") < seen.index("insert t_numbers") < seen.index("insert t_topics")
    assert seen.index("insert t_topics") < seen.index("delete t_topics") < seen.index("delete t_numbers")
    assert seen.index("delete t_numbers") < seen.index("audit")


def _hold_lock(url: str, name: str) -> psycopg.Connection[Any]:
    holder = psycopg.connect(url, application_name=name)
    holder.execute("select pg_advisory_xact_lock(%s, %s)", LOCK_KEYS)  # held until the transaction ends
    return holder


def test_apply_gives_up_after_the_lock_timeout_naming_the_holder(env: Conn, fleet: Path, database_url: str) -> None:
    holder = _hold_lock(database_url, "lock-holder-test")
    pid = holder.info.backend_pid
    waits: list[Any] = []
    try:
        started = time.monotonic()
        with pytest.raises(LockBusyError) as e:
            _apply(env, fleet, lock_timeout=0.6, on_wait=waits.append)
        assert 0.5 <= time.monotonic() - started < 5
    finally:
        holder.close()
    assert "lock-holder-test" in str(e.value) and f"pid {pid}" in str(e.value) and "since" in str(e.value)
    assert [w.application_name for w in waits] == ["lock-holder-test"]
    assert count(env, "t_tenants") == 0


def test_apply_waits_for_the_lock_then_applies(env: Conn, fleet: Path, database_url: str) -> None:
    holder = _hold_lock(database_url, "lock-holder-test")
    threading.Timer(0.5, holder.close).start()
    result = _apply(env, fleet, lock_timeout=10)
    assert result.summary.add == 29 and count(env, "t_tenants") == 1


@pytest.mark.slow
def test_two_concurrent_applies_in_two_processes_serialise(
    env: Conn, fleet: Path, database_url: str, redis: redis_lib.Redis
) -> None:
    """Both plan from the empty database; the lock lets one write; the other re-reads and refuses."""
    holder = _hold_lock(database_url, "lock-holder-test")
    cmd = [sys.executable, "-m", "mirage", "apply", str(fleet), "--yes", "--lock-timeout", "60"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        waiting = 0
        while waiting < 2 and time.monotonic() < deadline:  # both have planned and tried the lock once
            row = env.execute(
                "select count(*) as n from pg_stat_activity where datname = current_database()"
                " and application_name like 'mirage apply by%'"
                " and (query like '%pg_try_advisory_xact_lock%' or query like '%pg_locks%')"
            ).fetchone()
            env.rollback()
            waiting = row["n"]
            time.sleep(0.05)
        assert waiting == 2
    finally:
        holder.close()
    outs = [p.communicate(timeout=60) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    loser = next(err for p, (_, err) in zip(procs, outs, strict=True) if p.returncode == 1)
    assert "the database changed since the plan was made" in loser
    assert all("Waiting for the apply lock, held by lock-holder-test" in err for _, err in outs)
    assert count(env, "t_tenants") == 1 and count(env, "t_applies") == 1 and count(env, "t_numbers") == 3
    assert len(Queue(INSTANCES, connection=redis).job_ids) == 3 and not Queue(ROUNDS, connection=redis).job_ids


def test_policy_moved_off_a_deleted_number_keeps_its_row_and_targets(env: Conn, fleet: Path) -> None:
    """The old number's ON DELETE CASCADE must not take the policy the same plan moves to another number."""
    p = fleet / "padaria"
    edit(p / "outreach.yaml", "number: joao", "number: zeca")
    _apply(env, fleet)
    before = env.execute(
        "select p.id as policy, array_agg(t.id order by t.id) as targets"
        " from t_outreach_policies p join t_outreach_targets t on t.policy_id = p.id"
        " group by p.id"
    ).fetchall()
    env.rollback()
    edit(p / "outreach.yaml", "number: zeca", "number: joao")
    edit(p / "numbers.yaml", '  zeca:\n    label: Zeca reserva\n    number: "+5511999990003"\n    active: true\n', "")
    plan, _ = _plan(env, fleet)
    assert sorted((i.op.value, i.address) for i in plan.items) == [
        ("delete", "numbers.zeca"),
        ("update", "outreach.vip"),
    ]
    _apply(env, fleet, allow_delete=True)
    after = env.execute(
        "select p.id as policy, array_agg(t.id order by t.id) as targets"
        " from t_outreach_policies p join t_outreach_targets t on t.policy_id = p.id"
        " group by p.id"
    ).fetchall()
    env.rollback()
    assert after == before  # the same policy row and the same target rows (their runtime progress stays)
    assert _plan(env, fleet)[0].empty


@pytest.mark.parametrize("change", ["swap", "shift to a deleted number's", "shift to a created number's"])
def test_numbers_may_trade_whatsapp_numbers_in_one_apply(env: Conn, fleet: Path, change: str) -> None:
    """wa_number is unique per tenant, but only the state after the apply has to satisfy that."""
    p = fleet / "padaria"
    _apply(env, fleet)
    if change == "swap":
        edit(p / "numbers.yaml", '"+5511999990001"', '"+5511999990009"')
        edit(p / "numbers.yaml", '"+5511999990002"', '"+5511999990001"')
        edit(p / "numbers.yaml", '"+5511999990009"', '"+5511999990002"')
    elif change == "shift to a deleted number's":  # zeca leaves, maria takes its WhatsApp number
        edit(
            p / "numbers.yaml", '  zeca:\n    label: Zeca reserva\n    number: "+5511999990003"\n    active: true\n', ""
        )
        edit(p / "numbers.yaml", '"+5511999990002"', '"+5511999990003"')
    else:  # maria moves to a new SIM and a new number takes her old one
        edit(p / "numbers.yaml", '"+5511999990002"', '"+5511999990004"')
        edit(p / "numbers.yaml", "  zeca:\n", '  nova:\n    label: Nova\n    number: "+5511999990002"\n  zeca:\n')
    _apply(env, fleet, allow_delete=True)
    assert _plan(env, fleet)[0].empty


def test_apply_links_members_who_already_signed_up_with_a_confirmed_email(env: Conn, fleet: Path) -> None:
    """On Supabase, auth.users holds the sign-ins; a stand-in with the columns the link reads shows apply links
    a new member at once, and never an unconfirmed address."""
    created = ensure_auth_users(env)
    env.commit()
    try:
        confirmed, unconfirmed = "ana@padaria.com.br", "socio@padaria.com.br"  # the fixture's member and viewer
        add_auth_user(env, uuid.uuid4(), confirmed.upper())
        add_auth_user(env, uuid.uuid4(), unconfirmed, confirmed=False)
        env.commit()
        assert mirage("apply", fleet, "--yes").exit_code == 0
        linked = {
            r["email"]: r["auth_user_id"] is not None
            for r in env.execute("select email, auth_user_id from t_users").fetchall()
        }
        env.rollback()
        assert linked[confirmed] is True and linked[unconfirmed] is False
    finally:
        env.rollback()
        if created:
            env.execute("drop table auth.users")
        else:  # Supabase's own table: only the rows this test added
            env.execute("delete from auth.users where lower(email) = any(%s)", [[confirmed, unconfirmed]])
        env.commit()


@pytest.mark.parametrize(("written", "stored"), [(None, 24), (1, 1), (48, 48), (720, 720)])
def test_reply_wait_hours_lands_in_postgres_and_plans_no_change_after(
    env: Conn, fleet: Path, written: int | None, stored: int
) -> None:
    """The policy's wait for an answer is written by apply (24 when the YAML leaves it out) and is what the outreach
    tick reads back into the pure decision's policy state."""
    if written is not None:
        edit(
            fleet / "padaria" / "outreach.yaml",
            "hourly_limit: 5\n",
            f"hourly_limit: 5\n    reply_wait_hours: {written}\n",
        )
    _apply(env, fleet)
    row = env.execute("select reply_wait_hours from t_outreach_policies where key = 'vip'").fetchone()
    env.rollback()
    assert row == {"reply_wait_hours": stored}
    [vip] = load_policies(env, datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    env.rollback()
    assert vip.state.reply_wait_hours == stored
    assert _plan(env, fleet)[0].empty
