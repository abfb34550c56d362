"""Small promises of the command line: one clear line instead of a traceback, settings in any case, benches alone."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mirage.config.types import E164_PATTERN
from mirage.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_a_worker_with_redis_unreachable_prints_one_clear_line() -> None:
    env = {**os.environ, "REDIS_URL": "redis://user:hunter22@127.0.0.1:1/0", "MIRAGE_DOTENV": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "mirage", "worker", "--burst"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: redis: cannot connect to redis://user:***@127.0.0.1:1/0: Error 111 connecting to 127.0.0.1:1. "
        "Connection refused.; start Redis or fix REDIS_URL"
    ]
    assert "Traceback" not in proc.stderr and "hunter22" not in proc.stderr


@pytest.mark.parametrize("value", ["debug", "Debug", " DEBUG "])
def test_mirage_log_level_in_any_case_works_like_the_option(value: str) -> None:
    assert Settings.from_env({"MIRAGE_LOG_LEVEL": value}).log_level == "DEBUG"


@pytest.mark.parametrize("bench", sorted((ROOT / "bench").glob("*.py")), ids=lambda p: p.name)
def test_a_benchmark_imports_nothing_from_the_tests(bench: Path) -> None:
    """`make bench` runs each script alone, with the package installed: tests/ is not part of it."""
    tree = ast.parse(bench.read_text(encoding="utf-8"))
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in modules if m == "tests" or m.startswith("tests.")]


def test_make_bench_runs_every_benchmark() -> None:
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8").split("\nbench:", 1)[1].split("\n\n", 1)[0]
    assert "bench/*.py" in recipe


def test_the_config_benchmark_gives_each_of_its_tenants_numbers_of_its_own(tmp_path: Path) -> None:
    """bench/config.py generates 1,000 tenants; one WhatsApp number belongs to one tenant, so none may repeat."""
    spec = importlib.util.spec_from_file_location("bench_config", ROOT / "bench" / "config.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.generate(tmp_path, bench.TARGET_TENANTS)
    owners: dict[str, set[str]] = {}
    for numbers in tmp_path.glob("*/numbers.yaml"):
        for number in re.findall(r'number: "(\+\d+)"', numbers.read_text(encoding="utf-8")):
            owners.setdefault(number, set()).add(numbers.parent.name)
    assert len({t for ts in owners.values() for t in ts}) == bench.TARGET_TENANTS
    assert {n: ts for n, ts in owners.items() if len(ts) > 1} == {}
    assert all(re.fullmatch(E164_PATTERN, n) for n in owners)
