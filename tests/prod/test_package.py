"""The wheel is the product: built from a copy of the tree, installed into a fresh virtualenv, `mirage demo` runs
from an empty folder with nothing of the checkout in reach (migrations, example tenants, schemas come from the wheel).

Real: pip builds the wheel (setup.py's build hook) and installs it with its dependencies from the configured
index; the demo runs against the test session's Postgres (a database of its own) and Redis.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import uuid
import venv
import zipfile
from pathlib import Path

import pytest
import redis as redis_lib

import mirage
from mirage.crypto import generate_key
from mirage.resources import SOURCES

ROOT = Path(__file__).resolve().parents[2]
# the one source of the version: mirage/__init__.py, which pyproject reads (`dynamic = ["version"]`)
VERSION = mirage.__version__
assert tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["dynamic"] == {
    "version": {"attr": "mirage.__version__"}
}
# what the build needs: the package, the build files, and the folders the build hook bundles
TREE = [
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "mirage",
    *{s.split("/")[0] for s in SOURCES.values()},
]


def _copy_tree(dest: Path) -> Path:
    dest.mkdir()
    for name in TREE:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_bundle"))
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from a clean copy of the tree (so the checkout gets no build/ folder)."""
    base = tmp_path_factory.mktemp("wheel")
    src = _copy_tree(base / "src")
    out = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--quiet", "-w", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("mirage_whats_orchestrator-*.whl")
    return found


def test_the_wheel_carries_every_migration_example_tenant_and_schema(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for bundle, source in SOURCES.items():
        files = [p for p in (ROOT / source).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files, source
        for path in files:
            assert f"mirage/_bundle/{bundle}/{path.relative_to(ROOT / source).as_posix()}" in names
    # every data file of the package (translations, prompt templates, page templates and assets) is in the wheel
    data = [p for p in (ROOT / "mirage").rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    missing = [
        str(p.relative_to(ROOT))
        for p in data
        if "_bundle" not in p.parts and p.relative_to(ROOT).as_posix() not in names
    ]
    assert not missing, f"not in the wheel (add their suffix to package-data in pyproject.toml): {missing}"
    assert "mirage/i18n/pt-BR.yaml" in names and "mirage/py.typed" in names
    assert any(n.startswith("mirage/integrations/evolution_sim/") for n in names)  # the simulator the demo drives
    assert wheel.name.startswith(f"mirage_whats_orchestrator-{VERSION}-")


def test_the_changelog_has_an_entry_for_the_package_version() -> None:
    assert f"\n## {VERSION} " in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_pip_installed_wheel_runs_the_demo_from_an_empty_folder(
    wheel: Path, tmp_path: Path, server_url: str, redis_url: str, redis: redis_lib.Redis
) -> None:
    from mirage.db.scratch import create_database, drop_database

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    name = f"mirage_wheel_{uuid.uuid4().hex[:8]}"
    database = create_database(server_url, name, migrated=False)  # the installed CLI migrates it from the wheel
    keep = {"PATH", "HOME", "LANG", "TMPDIR"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        DATABASE_URL=database,
        REDIS_URL=redis_url,
        MIRAGE_SECRET_KEYS=generate_key(),
        MIRAGE_LOCALE="en",
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
    )
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            [str(bin_dir / "mirage"), *args], cwd=empty, env=env, capture_output=True, text=True, timeout=300
        )
        version = run("--version")
        assert version.stdout.strip() == f"mirage, version {VERSION}"
        where = subprocess.run(
            [str(bin_dir / "python"), "-c", "import mirage.resources as r; print(r.migrations_dir())"],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert where.startswith(str(env_dir)) and where.endswith("mirage/_bundle/migrations")
        demo = run("demo", "--port", "0", "--sim-port", "0")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "using the example tenants installed with Mirage" in demo.stdout
        migrations = sorted(p.stem for p in (ROOT / "supabase" / "migrations").glob("*.sql"))
        assert all(m in demo.stdout for m in migrations)
        assert "Done: 2 tenant(s), 14 connected number(s); the runtime ran " in demo.stdout
        assert "Every check at zero." in demo.stdout and " tokens)" in demo.stdout  # the simulated day, the model
        assert sorted(p.name for p in empty.iterdir()) in ([], [".mirage"])  # it wrote nothing else here
    finally:
        drop_database(server_url, name)
