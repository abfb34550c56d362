"""`mirage simulate` tests. Real: Postgres (the test server; each run makes and drops its own scratch database),
a private embedded Redis per run, Mirage's webhook service and the Evolution simulator on loopback, every RQ job
of the runtime. Virtual: the clock. Runs go through the CLI (click's CliRunner), as a person or CI runs them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mirage.cli import cli
from mirage.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tenants.d"


@dataclass
class Outcome:
    exit_code: int
    report: dict[str, Any]
    transcript: bytes
    stderr: str


@pytest.fixture
def simulate(server_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Outcome]:
    monkeypatch.delenv("MIRAGE_LOG_LEVEL", raising=False)
    get_settings.cache_clear()

    def run(root: Path, *args: str) -> Outcome:
        transcript = tmp_path / f"transcript-{len(list(tmp_path.iterdir()))}.jsonl"
        result = CliRunner().invoke(
            cli,
            ["simulate", str(root), "--server", server_url, "--format", "json", "--transcript", str(transcript), *args],
        )
        if result.exit_code not in (0, 1) or not result.stdout.strip():
            raise AssertionError(f"exit {result.exit_code}: {result.output}\n{result.exception!r}")
        return Outcome(result.exit_code, json.loads(result.stdout), transcript.read_bytes(), result.stderr)

    return run


def example(tmp_path: Path, tenant: str, edit: Callable[[Path], None] | None = None) -> Path:
    """A tenants folder holding a copy of one shipped example tenant, changed by `edit`."""
    root = tmp_path / "tenants.d"
    shutil.copytree(EXAMPLES / tenant, root / tenant)
    if edit is not None:
        edit(root / tenant)
    return root


def padaria(tmp_path: Path, edit: Callable[[Path], None] | None = None) -> Path:
    """A copy of the padaria example (two bots, one pair), changed by `edit`."""
    return example(tmp_path, "padaria-do-ze", edit)


def aurora(tmp_path: Path, edit: Callable[[Path], None] | None = None) -> Path:
    """A copy of the agencia-aurora example (bots, and outreach to people), changed by `edit`."""
    return example(tmp_path, "agencia-aurora", edit)
