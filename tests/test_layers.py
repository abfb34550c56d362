"""The layers of docs/architecture.md hold: each arrow of the diagram is a contract that a violation breaks.

Real: import-linter (`lint-imports`, what `make lint` runs) with the project's `.importlinter`, on a copy of the
package in a temporary folder with one deliberate violation added.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
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
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(ROOT / "mirage", root / "mirage", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize(
    ("module", "violation", "contract"),
    [
        ("db/connect.py", "import mirage.jobs.queues", "Layers"),
        ("db/connect.py", "import mirage.integrations.evolution.client", "Layers"),
        ("integrations/evolution/client.py", "import mirage.db.connect", "Layers"),
        ("jobs/queues.py", "import mirage.web.app", "Layers"),
        ("web/app.py", "import mirage.cli.plan", "Layers"),
        ("config/loader.py", "import mirage.reconcile.apply", "Layers"),
        ("demo.py", "import mirage.doctor", "Layers"),
        ("simulation/report.py", "import mirage.demo", "Layers"),
        ("web/app.py", "import mirage.simulation.driver", "Layers"),
        ("errors.py", "import mirage.config", "The base modules"),
        ("cli/plan.py", "import psycopg", "The CLI is a thin shell"),
        ("demo.py", "import mirage.cli.plan", "The demo runs the domain functions"),
    ],
)
def test_an_import_against_an_arrow_of_the_diagram_breaks_its_contract(
    copy: Path, module: str, violation: str, contract: str
) -> None:
    path = copy / "mirage" / module
    original = path.read_text()
    path.write_text(original + f"\n{violation}  # deliberate violation\n")
    try:
        broken = _lint_imports(copy)
    finally:
        path.write_text(original)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert re.search(rf"{re.escape(contract)}.*BROKEN", broken.stdout.replace("\n", " ")), broken.stdout


def test_the_diagram_names_every_layer_contract() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    contracts = re.findall(r"^\[importlinter:contract:([a-z-]+)\]", (ROOT / ".importlinter").read_text(), re.M)
    table = doc.split("## Layers", 1)[1].split("\n## ", 1)[0]
    assert [c for c in contracts if f"`{c}`" not in table] == []


LAYER_PACKAGES = [
    "cli",
    "config",
    "db",
    "embedded",
    "engine",
    "i18n",
    "ingest",
    "integrations",
    "jobs",
    "reconcile",
    "simulation",
    "web",
]


@pytest.mark.parametrize("package", LAYER_PACKAGES)
def test_every_layer_package_docstring_says_what_lives_there_and_what_it_may_import(package: str) -> None:
    source = (ROOT / "mirage" / package / "__init__.py").read_text(encoding="utf-8")
    doc = " ".join((ast.get_docstring(ast.parse(source)) or "").split())
    assert len(doc) > 80, f"mirage/{package}/__init__.py does not say what lives there"
    assert "may import" in doc.lower(), f"mirage/{package}/__init__.py does not say what it may import"


def test_the_layer_package_list_covers_every_package_of_mirage() -> None:
    found = sorted(p.parent.name for p in (ROOT / "mirage").glob("*/__init__.py") if p.parent.name != "_bundle")
    assert found == sorted(LAYER_PACKAGES)
