"""The embedded Postgres: pgserver's binaries and data folder under `<state>/postgres`, left running."""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

from mirage.embedded.locks import pid_alive
from mirage.errors import ServiceError

log = logging.getLogger(__name__)


def _pgserver() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver imports it at class definition.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    return pgserver


def bundled_tool(name: str) -> Path | None:
    """pgserver's own copy of a Postgres client program (pg_dump, pg_restore, psql), when installed."""
    try:
        path = Path(_pgserver().__file__).parent / "pginstall" / "bin" / name
    except ImportError:
        return None
    return path if path.is_file() and os.access(path, os.X_OK) else None


def pgdata_dir(state_dir: Path) -> Path:
    return state_dir.resolve() / "postgres"


def ensure_postgres(state_dir: Path) -> str:
    """Start (or find running) the embedded Postgres for `state_dir` and return its connection URI."""
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        pgserver = _pgserver()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(pgdata_dir(state_dir), cleanup_mode=None)
        uri: str = server.get_uri()
    except (OSError, subprocess.SubprocessError, RuntimeError, AssertionError) as e:
        log_file = pgdata_dir(state_dir) / "log"
        raise ServiceError("embedded postgres", f"failed to start ({e}); see {log_file}") from e
    return uri


def postgres_running(state_dir: Path) -> int | None:
    """The postmaster pid when the embedded Postgres of `state_dir` runs, else None."""
    pid_file = pgdata_dir(state_dir) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def stop_postgres(state_dir: Path) -> bool:
    """Stop the embedded Postgres cleanly (pg_ctl stop -m fast); False when it was not running."""
    if postgres_running(state_dir) is None:
        return False
    commands = _pgserver()._commands
    user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs the server as this user under root
    try:
        commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata_dir(state_dir), user=user, timeout=30)
    except (subprocess.SubprocessError, OSError) as e:
        raise ServiceError("embedded postgres", f"could not stop: {e}") from e
    return True
