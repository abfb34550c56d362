"""Instance lifecycle jobs run in process by an RQ SimpleWorker against real Redis, Postgres and the simulator."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from mirage.db import evolution_sessions as store
from mirage.db.connect import connect
from mirage.errors import TemporaryError
from mirage.integrations.evolution.models import WEBHOOK_EVENTS, WebhookConfig
from mirage.integrations.evolution.naming import instance_name
from mirage.integrations.evolution_sim import SimHandle
from mirage.jobs import lifecycle
from mirage.jobs.queues import INSTANCES, enqueue_unique, job_key, queue
from mirage.jobs.worker import MirageSimpleWorker as SimpleWorker
from tests.evolution.helpers import Receiver, make_number, make_tenant, row, wait_until

PHONE = "+5511912345678"


def run_job(r: redis_lib.Redis, func: str, arg: uuid.UUID | str, job_id: str | None = None) -> Job:
    """Enqueue one instances job the way `mirage apply` does and run the queue in process until it is empty."""
    jid = job_id or f"{func}:{arg}:{uuid.uuid4().hex[:6]}"
    assert enqueue_unique(INSTANCES, f"mirage.jobs.instances.{func}", job_id=jid, args=[str(arg)], conn=r)
    SimpleWorker([queue(INSTANCES, r)], connection=r).work(burst=True)
    job = Job.fetch(job_key(jid), connection=r)
    return job


def setup_number(db: psycopg.Connection[Any], sim: SimHandle, key: str = "sales") -> uuid.UUID:
    tenant = make_tenant(db, base_url=sim.url, api_key=sim.api_key)
    return make_number(db, tenant, key, PHONE)


def test_provision_creates_the_instance_with_mirage_webhook_and_stores_the_session(
    db: psycopg.Connection[Any], redis: redis_lib.Redis, sim: SimHandle, public_url: str, receiver: Receiver
) -> None:
    number_id = setup_number(db, sim)
    job = run_job(redis, "provision_number", number_id)
    assert job.get_status() == JobStatus.FINISHED, job.latest_result()
    assert job.return_value()["action"] == "created"
    name = instance_name("acme", "sales")
    session = row(db, "select * from t_sessions where number_id = %s", number_id)
    number = row(db, "select status::text, session_id from t_numbers where id = %s", number_id)
    assert session["instance_name"] == name == "mirage-acme-sales" and session["state"] == "connecting"
    assert session["instance_id"] == sim.world.instances[name].instance_id and session["last_qr_enc"] is not None
    assert number == {"status": "qr", "session_id": session["id"]}
    hook = sim.world.instances[name].webhook
    assert hook is not None and hook.url == public_url + "/api/webhooks/evolution"
    assert hook.events == list(WEBHOOK_EVENTS) and not hook.by_events and not hook.base64
    with connect() as conn:
        stored = store.load_session(conn, session["id"])
    assert stored is not None
    assert hook.headers == {"x-webhook-secret": stored.webhook_secret, "jwt_key": stored.jwt_key}
    assert sim.world.instances[name].token == stored.token
    # the webhooks Evolution sends now prove the stored secret
    assert receiver.wait_for("qrcode.updated", instance=name)[0].headers["x-webhook-secret"] == stored.webhook_secret


def test_provision_again_changes_nothing(
    db: psycopg.Connection[Any], redis: redis_lib.Redis, sim: SimHandle, public_url: str
) -> None:
    number_id = setup_number(db, sim)
    run_job(redis, "provision_number", number_id)
    first = row(db, "select id, token_hash from t_sessions where number_id = %s", number_id)
    again = run_job(redis, "provision_number", number_id)
    assert again.return_value()["action"] == "exists"
    assert row(db, "select count(*) as n from t_sessions")["n"] == 1
    assert row(db, "select id, token_hash from t_sessions where number_id = %s", number_id) == first
    assert list(sim.world.instances) == ["mirage-acme-sales"]


def test_provision_recreates_an_instance_deleted_behind_mirages_back(
    db: psycopg.Connection[Any], redis: redis_lib.Redis, sim: SimHandle, public_url: str
) -> None:
    number_id = setup_number(db, sim)
    run_job(redis, "provision_number", number_id)
    token = sim.world.instances["mirage-acme-sales"].token
    with sim.client() as client:
        client.delete_instance("mirage-acme-sales")
    job = run_job(redis, "provision_number", number_id)
    assert job.return_value()["action"] == "created"
    assert sim.world.instances["mirage-acme-sales"].token == token  # Mirage's stored token, passed at create


def test_provision_adopts_an_instance_whose_name_is_already_in_use(
    db: psycopg.Connection[Any], redis: redis_lib.Redis, sim: SimHandle, public_url: str
) -> None:
    number_id = setup_number(db, sim)
    with sim.client() as client:
        other = client.create_instance(
            "mirage-acme-sales", webhook=WebhookConfig(url="http://127.0.0.1:9/x", secret="a" * 40, jwt_key="b" * 40)
        )
    job = run_job(redis, "provision_number", number_id)
    assert job.return_value()["action"] == "adopted"
    with connect() as conn:
        session = store.live_session(conn, number_id)
    assert session is not None and session.token == other.token
    hook = sim.world.instances["mirage-acme-sales"].webhook
    assert hook is not None and hook.url == public_url + "/api/webhooks/evolution"
    assert hook.headers["x-webhook-secret"] == session.webhook_secret


def test_provision_finishes_a_session_stored_before_a_crash(
    db: psycopg.Connection[Any], redis: redis_lib.Redis, sim: SimHandle, public_url: str
) -> None:
    number_id = setup_number(db, sim)
    with connect() as conn:
        number = store.load_number(conn, number_id)
        assert number is not None
        half = store.insert_session(conn, number, instance_name="mirage-acme-sales", base_url=sim.url)
    assert row(db, "select status::text from t_numbers where id = %s", number_id)["status"] == "provisioning"
    job = run_job(redis, "provision_number", number_id)
    assert job.return_value() == {**job.return_value(), "action": "created", "session_id": str(half.id)}
    assert sim.world.instances["mirage-acme-sales"].token == half.token


def test_refresh_records_open_with_connected_at_and_then_close(
    db: psycopg.Connection[Any], redis: redis_lib.Redis, sim: SimHandle, public_url: str
) -> None:
    number_id = setup_number(db, sim)
    run_job(redis, "provision_number", number_id)
    session_id = row(db, "select id from t_sessions")["id"]
    sim.scan("mirage-acme-sales", PHONE)
    assert run_job(redis, "refresh_session", session_id).return_value()["state"] == "open"
    number = row(db, "select status::text, connected_at from t_numbers where id = %s", number_id)
    session = row(db, "select state, last_seen, last_qr_enc from t_sessions where id = %s", session_id)
    assert number["status"] == "open" and number["connected_at"] is not None
    assert session["state"] == "open" and session["last_seen"] is not None and session["last_qr_enc"] is None
    sim.disconnect("mirage-acme-sales", 401)
    run_job(redis, "refresh_session", session_id)
    assert row(db, "select status::text, connected_at from t_numbers")["status"] == "close"


def test_deprovision_logs_out_and_deletes_then_the_number_can_be_provisioned_again(
    db: psycopg.Connection[Any], redis: redis_lib.Redis, sim: SimHandle, public_url: str
) -> None:
    number_id = setup_number(db, sim)
    run_job(redis, "provision_number", number_id)
    session_id = row(db, "select id from t_sessions")["id"]
    sim.scan("mirage-acme-sales", PHONE)
    assert run_job(redis, "deprovision_session", session_id).return_value()["action"] == "deprovisioned"
    assert "mirage-acme-sales" not in sim.world.instances
    assert ("DELETE", "/instance/logout/mirage-acme-sales") in sim.world.calls
    old = row(db, "select deprovisioned_at, token_enc, webhook_secret_enc from t_sessions where id = %s", session_id)
    assert old["deprovisioned_at"] is not None and old["token_enc"] is None and old["webhook_secret_enc"] is not None
    assert row(db, "select status::text, session_id from t_numbers") == {"status": "removed", "session_id": None}
    assert run_job(redis, "deprovision_session", session_id).return_value()["action"] == "skipped"
    run_job(redis, "provision_number", number_id)
    names = sorted(r["instance_name"] for r in db.execute("select instance_name from t_sessions").fetchall())
    assert names[0] == "mirage-acme-sales" and names[1].startswith("mirage-acme-sales~")
    assert "mirage-acme-sales" in sim.world.instances


def test_reprovision_retires_the_old_session_before_provisioning_a_new_one(
    db: psycopg.Connection[Any], redis: redis_lib.Redis, sim: SimHandle, public_url: str
) -> None:
    number_id = setup_number(db, sim)
    run_job(redis, "provision_number", number_id)
    old_session = row(db, "select id from t_sessions")["id"]
    sim.scan("mirage-acme-sales", PHONE)
    db.execute("update t_numbers set wa_number = '+5511912340000' where id = %s", [number_id])
    db.commit()
    jid = f"reprovision:{number_id}"
    args = [str(number_id), str(old_session)]
    assert enqueue_unique(INSTANCES, "mirage.jobs.instances.reprovision_number", job_id=jid, args=args, conn=redis)
    SimpleWorker([queue(INSTANCES, redis)], connection=redis).work(burst=True)
    job = Job.fetch(job_key(jid), connection=redis)
    assert job.get_status() == JobStatus.FINISHED, job.latest_result()
    assert job.return_value()["action"] == "created"
    sessions = db.execute("select id, deprovisioned_at from t_sessions order by created_at").fetchall()
    db.rollback()
    assert sessions[0]["id"] == old_session and sessions[0]["deprovisioned_at"] is not None
    assert len(sessions) == 2 and sessions[1]["deprovisioned_at"] is None
    number = row(db, "select session_id, status::text from t_numbers where id = %s", number_id)
    assert number == {"session_id": sessions[1]["id"], "status": "qr"}


def test_a_tenant_moved_to_another_evolution_server_gets_its_instances_there(
    db: psycopg.Connection[Any],
    redis: redis_lib.Redis,
    sim: SimHandle,
    make_sim: Callable[..., SimHandle],
    public_url: str,
) -> None:
    number_id = setup_number(db, sim)
    run_job(redis, "provision_number", number_id)
    old_session = row(db, "select id from t_sessions")["id"]
    new_sim = make_sim()
    db.execute("update t_settings_tenant set evolution_base_url = %s", [new_sim.url])
    db.commit()
    assert run_job(redis, "provision_number", number_id).return_value()["action"] == "created"
    assert "mirage-acme-sales" not in sim.world.instances  # logged out and deleted on the old server
    assert "mirage-acme-sales" in new_sim.world.instances
    sessions = db.execute("select id, base_url, deprovisioned_at from t_sessions order by created_at").fetchall()
    db.rollback()
    assert sessions[0]["id"] == old_session and sessions[0]["deprovisioned_at"] is not None
    assert sessions[1]["base_url"] == new_sim.url and sessions[1]["deprovisioned_at"] is None


def test_moving_away_from_a_dead_evolution_server_does_not_wait_for_it(
    db: psycopg.Connection[Any],
    redis: redis_lib.Redis,
    sim: SimHandle,
    make_sim: Callable[..., SimHandle],
    public_url: str,
) -> None:
    number_id = setup_number(db, sim)
    run_job(redis, "provision_number", number_id)
    sim.stop()  # the old server is gone for good
    new_sim = make_sim()
    db.execute("update t_settings_tenant set evolution_base_url = %s", [new_sim.url])
    db.commit()
    assert run_job(redis, "provision_number", number_id).return_value()["action"] == "created"
    assert "mirage-acme-sales" in new_sim.world.instances


def test_an_evolution_outage_leaves_the_job_for_rq_to_retry(
    db: psycopg.Connection[Any], redis: redis_lib.Redis, sim: SimHandle, public_url: str
) -> None:
    number_id = setup_number(db, sim)
    sim.chaos(fail_next=1000)
    job = run_job(redis, "provision_number", number_id)
    assert job.get_status() == JobStatus.SCHEDULED and job.retries_left == 4
    assert row(db, "select status::text from t_numbers")["status"] == "provisioning"
    sim.chaos(fail_next=0)
    with connect() as conn:
        assert lifecycle.provision(conn, number_id).action == "created"


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [("no_url", "no Evolution URL"), ("bad_key", "401")],
)
def test_a_permanent_failure_fails_the_job_at_once_without_retries(
    db: psycopg.Connection[Any],
    redis: redis_lib.Redis,
    make_sim: Callable[..., SimHandle],
    public_url: str,
    scenario: str,
    reason: str,
) -> None:
    sim = make_sim()
    tenant = make_tenant(
        db,
        base_url=None if scenario == "no_url" else sim.url,
        api_key="wrong-global-key" if scenario == "bad_key" else None,
    )
    number_id = make_number(db, tenant)
    job = run_job(redis, "provision_number", number_id)
    assert job.get_status() == JobStatus.FAILED and job.retries_left == 0
    assert job.id in FailedJobRegistry(INSTANCES, connection=redis).get_job_ids()
    assert reason in (job.latest_result().exc_string or "")  # type: ignore[union-attr]
    if scenario == "bad_key":
        status = row(db, "select status::text, status_reason from t_numbers")
        assert status["status"] == "error" and "401" in status["status_reason"]


def test_provision_of_a_deleted_number_is_skipped(db: psycopg.Connection[Any], redis: redis_lib.Redis) -> None:
    job = run_job(redis, "provision_number", uuid.uuid4())
    assert job.get_status() == JobStatus.FINISHED and job.return_value()["action"] == "skipped"


def test_two_provisioners_of_one_number_do_not_race(
    db: psycopg.Connection[Any], sim: SimHandle, public_url: str
) -> None:
    number_id = setup_number(db, sim)
    with (
        connect() as holder,
        store.number_lock(holder, number_id),
        connect() as conn,
        pytest.raises(TemporaryError),
    ):
        lifecycle.provision(conn, number_id)
    with connect() as conn:
        assert lifecycle.provision(conn, number_id).action == "created"
    wait_until(lambda: "mirage-acme-sales" in sim.world.instances)
