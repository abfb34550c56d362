"""The embedded Postgres and Redis are real servers, shared by every process of one state folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib

from mirage.embedded import stop_postgres, stop_redis
from mirage.embedded.redis import socket_path
from mirage.errors import ServiceError

ROOT = Path(__file__).resolve().parents[1]


def test_embedded_postgres_is_a_real_server_with_roles_and_rls(server_url: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        version = conn.execute("show server_version_num").fetchone()[0]
        assert int(version) >= 150000
        conn.execute("drop role if exists mirage_probe_role")
        conn.execute("create role mirage_probe_role nologin")
        try:
            conn.execute("create temp table probe (tenant int); alter table probe enable row level security")
            conn.execute("alter table probe force row level security")
            conn.execute("create policy only_one on probe using (tenant = 1)")
            conn.execute("insert into probe values (1), (2)")
            conn.execute("grant select on probe to mirage_probe_role")
            conn.execute("set role mirage_probe_role")
            assert conn.execute("select count(*) from probe").fetchone()[0] == 1
            conn.execute("reset role")
            assert conn.execute("select count(*) from probe").fetchone()[0] == 2  # superuser bypasses
        finally:
            conn.execute("reset role; drop table if exists probe")
            conn.execute("drop role mirage_probe_role")


def test_embedded_redis_is_a_real_server(redis: redis_lib.Redis) -> None:
    info = redis.info("server")
    assert int(info["redis_version"].split(".")[0]) >= 6
    assert info["process_id"] > 0
    redis.set("probe", "1")
    assert redis.get("probe") == b"1"


_PROBE = textwrap.dedent(
    """
    import json, sys
    from mirage.backends import postgres_backend, redis_backend
    from mirage.db.connect import connect
    import redis
    pg = postgres_backend(); rd = redis_backend()
    conn = connect(pg.url, autocommit=True)
    conn.execute("create table if not exists probe (v text)")
    if sys.argv[1] == "write":
        conn.execute("insert into probe values ('from-first')")
        redis.Redis.from_url(rd.url).set("probe", "from-first")
    rows = [r["v"] for r in conn.execute("select v from probe").fetchall()]
    ck = conn.execute("select pid from pg_stat_activity where backend_type = 'checkpointer'").fetchone()
    client = redis.Redis.from_url(rd.url)
    print(json.dumps({"pg_url": pg.url, "pg_checkpointer": ck["pid"], "rows": rows,
                      "redis_pid": client.info("server")["process_id"], "redis_value": client.get("probe").decode()}))
    """
)


def _run(state: Path, *args: str) -> dict[str, object]:
    env = {"MIRAGE_STATE_DIR": str(state), "PATH": "/usr/bin:/bin", "MIRAGE_LOG_LEVEL": "WARNING"}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _mirage(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"MIRAGE_STATE_DIR": str(state), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "mirage", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_two_processes_share_one_postgres_and_one_redis_and_data_survives_restart() -> None:
    # under the worktree, not the 0700 temp folder: pgserver runs Postgres as its own user under root
    state = ROOT / ".mirage-test" / f"shared-{uuid.uuid4().hex[:8]}"
    try:
        first = _run(state, "write")
        second = _run(state, "read")
        assert first["pg_url"] == second["pg_url"]
        assert first["pg_checkpointer"] == second["pg_checkpointer"]  # the same postmaster
        assert first["redis_pid"] == second["redis_pid"]
        assert second["rows"] == ["from-first"] and second["redis_value"] == "from-first"

        down = _mirage(state, "down")
        assert down.returncode == 0, down.stderr
        assert "stopped" in down.stdout
        assert not (state / "redis" / "redis.sock").exists()

        third = _run(state, "read")  # starts both again: the data was kept on disk
        assert third["rows"] == ["from-first"] and third["redis_value"] == "from-first"
        assert third["redis_pid"] != first["redis_pid"]
    finally:  # in process: a test must never leave servers behind, even if the CLI cannot start
        stop_redis(state)
        stop_postgres(state)
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.parametrize("tamper", ["world-writable", "symlink"])
def test_a_shared_temp_socket_folder_someone_else_could_swap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: str
) -> None:
    """A long state path puts the socket in a per-folder directory under the temp dir; another local user who
    made that directory first could swap the socket for their own Redis (RQ jobs are pickles: code execution)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    state = tmp_path / ("long-state-folder-" * 6)
    folder = socket_path(state).parent  # ours: made 0700 on first use
    assert folder.parent == tmp_path / "tmp" and socket_path(state).parent == folder
    if tamper == "world-writable":
        folder.chmod(0o777)
    else:
        folder.rmdir()
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        os.symlink(tmp_path / "elsewhere", folder)
    with pytest.raises(ServiceError, match="only you"):
        socket_path(state)


def test_stopping_a_redis_that_refuses_to_exit_is_an_error_not_a_silent_success(tmp_path: Path) -> None:
    import shutil
    import signal

    from mirage.embedded import ensure_redis, redis_running

    state = tmp_path / "state"
    ensure_redis(state)
    pid = redis_running(state)
    assert pid is not None
    shutil.rmtree(state / "redis")  # its final save cannot be written: Redis refuses to shut down
    (state / "redis").mkdir()
    (state / "redis" / "redis.pid").write_text(str(pid))
    try:
        with pytest.raises(ServiceError, match=f"could not stop pid {pid}"):
            stop_redis(state, timeout=2)
    finally:
        os.kill(pid, signal.SIGKILL)


def test_a_throw_away_redis_writes_nothing_to_disk_while_it_runs_or_when_it_stops(tmp_path: Path) -> None:
    from mirage.embedded import ensure_redis, redis_running

    state = tmp_path / "state"
    client = redis_lib.Redis.from_url(ensure_redis(state, persistent=False))
    try:
        client.set("k", "v")
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("save") == {"save": ""}
    finally:
        client.close()
        assert stop_redis(state, save=False)
    assert redis_running(state) is None
    assert not list((state / "redis").glob("*.rdb")) and not list((state / "redis").glob("appendonly*"))


def test_a_server_that_exited_counts_as_stopped_before_its_parent_reaps_it() -> None:
    import time

    from mirage.embedded.locks import pid_alive

    child = subprocess.Popen(["true"])  # exits at once; not waited for, it stays a zombie of this process
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].startswith(" Z"):
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert not pid_alive(child.pid)
    finally:
        child.wait()
    assert pid_alive(os.getpid())


def _own_servers_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PYTEST_ADDOPTS")}
    return {**env, **extra}


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        (
            [
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_queues.py::test_enqueue_unique_enqueues_a_job_id_once",
                "tests/test_cron.py::test_refresh_metrics_refreshes_every_view",
            ],
            "MIRAGE_TEST_STATE_DIR",
        ),
        (["bench/plan.py", "--resources", "60", "--small", "30", "--repeat", "1"], "MIRAGE_BENCH_STATE_DIR"),
        (["bench/page.py", "--messages", "2000", "--viewers", "2", "--requests", "2"], "MIRAGE_BENCH_STATE_DIR"),
    ],
    ids=["make test", "bench/plan.py", "bench/page.py"],
)
def test_a_command_that_starts_embedded_servers_for_itself_stops_them(command: list[str], variable: str) -> None:
    from mirage.embedded import postgres_running, redis_running

    # under the worktree, not the 0700 temp folder: pgserver runs Postgres as its own user under root
    state = ROOT / ".mirage-test" / f"own-{uuid.uuid4().hex[:8]}"
    try:
        proc = subprocess.run(
            [sys.executable, *command],
            cwd=ROOT,
            env=_own_servers_env(**{variable: str(state)}),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert (state / "postgres").is_dir()  # it did start its own
        assert postgres_running(state) is None and redis_running(state) is None
    finally:
        stop_redis(state)
        stop_postgres(state)
        shutil.rmtree(state, ignore_errors=True)
