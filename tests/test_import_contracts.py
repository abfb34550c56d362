"""The pure core stays pure: the import contracts fail `make lint` on a deliberate violation, and pass without it.

Real: import-linter (`lint-imports`) runs on a copy of the package in a temporary folder, with the project's
own `.importlinter`; a fresh interpreter shows what importing a core module actually loads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mirage.config.types import SecretRef
from mirage.logs import redact_text
from tests.reconcile.helpers import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# Modules the contract names as pure, and what importing each must never load.
CORE = [
    "mirage.config",
    "mirage.engine.calendar",
    "mirage.reconcile.diff",
    "mirage.reconcile.plan",
    "mirage.reconcile.render",
    "mirage.reconcile.desired",
    "mirage.reconcile.effects",
]
IO = ["psycopg", "psycopg_pool", "redis", "rq", "httpx", "starlette", "openai", "cryptography", "mirage.settings"]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` (what `make lint` runs) with the project's contracts over the `mirage` package under `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / ".importlinter"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the `mirage` package (sources only) in a temporary folder."""
    root = tmp_path_factory.mktemp("contracts")
    shutil.copytree(ROOT / "mirage", root / "mirage", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize(
    ("module", "violation", "expected"),
    [
        ("reconcile/diff.py", "import psycopg", "mirage.reconcile.diff -> psycopg"),
        ("reconcile/render.py", "import cryptography", "mirage.reconcile.render -> cryptography"),
        ("config/types.py", "from mirage import settings", "mirage.config.types -> mirage.settings"),
        ("reconcile/plan.py", "from mirage.crypto import keyring", "mirage.reconcile.plan -> mirage.crypto"),
        ("engine/calendar.py", "import httpx", "mirage.engine.calendar -> httpx"),
        ("reconcile/rows.py", "import redis", "mirage.reconcile.rows -> redis"),
    ],
)
def test_a_core_module_importing_io_breaks_the_contracts_and_removing_it_mends_them(
    copy: Path, module: str, violation: str, expected: str
) -> None:
    path = copy / "mirage" / module
    original = path.read_text()
    path.write_text(original + f"\n{violation}  # deliberate violation\n")
    try:
        broken = _lint_imports(copy)
    finally:
        path.write_text(original)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert expected in broken.stdout
    assert "BROKEN" in broken.stdout


def test_the_contracts_hold_on_the_copy_without_a_violation(copy: Path) -> None:
    kept = _lint_imports(copy)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "0 broken" in kept.stdout


@pytest.mark.parametrize("module", CORE)
def test_importing_a_core_module_loads_no_io_library_nor_settings(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in {IO!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_secret_refs_resolve_only_against_the_mapping_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRAGE_TEST_ONLY_IN_OS_ENVIRON", "from-the-process")
    ref = SecretRef(env="MIRAGE_TEST_ONLY_IN_OS_ENVIRON")
    assert ref.resolve({}) is None
    assert ref.resolve({"MIRAGE_TEST_ONLY_IN_OS_ENVIRON": "given"}) == "given"


def test_the_shell_registers_secret_values_for_redaction_the_core_does_not(tmp_path: Path) -> None:
    from mirage.config import load_fleet
    from mirage.reconcile.desired import desired_state
    from mirage.reconcile.service import load

    root = tmp_path / "tenants.d"
    shutil.copytree(FIXTURES / "fleet", root)
    core_value = "core-only-secret-value-1"
    environ = {"PADARIA_EVOLUTION_API_KEY": core_value, "PADARIA_OPENAI_API_KEY": core_value}
    desired_state(load_fleet(root, environ=environ), environ=environ)
    assert core_value in redact_text(f"x {core_value} y")  # the pure core registered nothing

    shell_value = "shell-registered-secret-2"
    load(root, None, {"PADARIA_EVOLUTION_API_KEY": shell_value, "PADARIA_OPENAI_API_KEY": shell_value})
    assert shell_value not in redact_text(f"x {shell_value} y")
