"""Headless Chromium (Debian's `chromium`, found on PATH) driven through its command line: `--screenshot`,
`--dump-dom` and `--enable-logging=stderr`, which prints every console message (errors, CSP violations) as a
`CONSOLE` line. One profile folder per test keeps the session cookie between runs, as a real browser does."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",  # the test container runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--run-all-compositor-stages-before-draw",  # screenshots of finished frames (fades done), not mid-way
    "--enable-logging=stderr",
    "--v=0",
]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(frozen=True)
class Visit:
    dom: str
    console: list[str]


class Browser:
    def __init__(self, executable: str, profile: Path) -> None:
        self.executable = executable
        self.profile = profile

    def _run(self, url: str, *extra: str, budget_ms: int = 4000) -> tuple[str, list[str]]:
        cmd = [
            self.executable,
            *FLAGS,
            f"--user-data-dir={self.profile}",
            f"--virtual-time-budget={budget_ms}",
            *extra,
            url,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
        if done.returncode != 0:
            raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout, console

    def dom(self, url: str, budget_ms: int = 4000) -> Visit:
        out, console = self._run(url, "--dump-dom", budget_ms=budget_ms)
        return Visit(out, console)

    def screenshot(self, url: str, path: Path, *, width: int = 1280, height: int = 1800) -> Visit:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        _, console = self._run(url, f"--screenshot={path}", f"--window-size={width},{height}")
        if not path.exists() or path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
            raise RuntimeError(f"no screenshot at {path}")
        return Visit("", console)
