"""A newcomer's path: `mirage demo`, then every command of the README's tour, in order, each exiting as it says.

Real: a state folder of its own (embedded Postgres and Redis started by the demo, stopped by the tour's last
line, `mirage down`), the demo's Evolution simulator, every command a fresh `mirage` process with nothing set
by hand. Long-running commands (serve, worker, cron, demo, the OpenAI simulator) are checked with a bounded
form: `--help`, `worker --burst`, `cron --list`; the tour's own `mirage sim evolution ... &` runs in the
background for `mirage connect`, as it would in a terminal.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOUNDED = {
    "serve": ["serve", "--help"],
    "worker": ["worker", "--burst"],
    "cron": ["cron", "--list"],
    "demo": ["demo", "--help"],
    "sim openai": ["sim", "openai", "--help"],
}


def tour_commands() -> list[tuple[list[str], bool]]:
    """(argv after `mirage`, runs in the background) for each line of the README's tour block, in order."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## A short tour", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    out = []
    for line in block.splitlines():
        command = line.split("  #", 1)[0].strip()
        if not command:
            continue
        background = command.endswith("&")
        argv = shlex.split(command.rstrip("&"))
        assert argv[0] == "mirage", line
        out.append((argv[1:], background))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def newcomer(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A working folder with the repository's tenants and schemas, and an environment with nothing set by hand."""
    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copytree(ROOT / "tenants.d", work / "tenants.d")
    shutil.copytree(ROOT / "schemas", work / "schemas")
    state = ROOT / ".mirage-test" / f"tour-{uuid.uuid4().hex[:8]}"  # pgserver's user must reach it
    drop = ("DATABASE_URL", "REDIS_URL", "MIRAGE_SECRET_KEYS", "EVOLUTION_BASE_URL", "EVOLUTION_API_KEY")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST")}
    env.update(MIRAGE_STATE_DIR=str(state), MIRAGE_DOTENV="", MIRAGE_LOG_FORMAT="text", PYTHONPATH=str(ROOT))
    try:
        yield work, env
    finally:
        from mirage.embedded import stop_postgres, stop_redis

        stop_redis(state)
        stop_postgres(state)
        shutil.rmtree(state, ignore_errors=True)


def _mirage(work: Path, env: dict[str, str], argv: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirage", *argv],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_readme_tour_lists_the_commands_the_test_runs() -> None:
    commands = [argv for argv, _ in tour_commands()]
    assert ["plan", "--detailed-exitcode"] in commands and commands[-1] == ["down"]
    assert any(argv[:2] == ["sim", "evolution"] for argv, background in tour_commands() if background)


@pytest.mark.slow
def test_after_the_demo_every_tour_command_exits_as_the_readme_says(newcomer: tuple[Path, dict[str, str]]) -> None:
    work, env = newcomer
    sim_port = _free_port()
    demo = _mirage(work, env, ["demo", "--port", "0", "--sim-port", str(sim_port)], timeout=600)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    background: list[subprocess.Popen[str]] = []
    try:
        for argv, in_background in tour_commands():
            name = " ".join(argv[:2]) if argv[0] == "sim" else argv[0]
            argv = BOUNDED.get(name, argv)
            if name == "sim evolution":  # the demo's simulator port, wherever this test put it
                argv = [a if a != "8090" else str(sim_port) for a in argv]
            if in_background:
                background.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "mirage", *argv],
                        cwd=work,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        text=True,
                    )
                )
                _wait_for_port(sim_port)
                continue
            done = _mirage(work, env, argv)
            shown = f"$ mirage {' '.join(argv)}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            assert done.returncode == 0, shown
            if argv[:1] == ["plan"] and "--format" not in argv:
                assert "No changes." in done.stdout and "Runtime:" not in done.stdout + done.stderr, shown
            if argv[:1] == ["apply"]:
                assert "No changes." in done.stdout, shown
            if argv[:1] == ["connect"]:
                assert re.search(r"Connected: padaria-do-ze/ze-balcao", done.stdout), shown
    finally:
        for proc in background:
            proc.terminate()
            proc.wait(timeout=20)


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")
