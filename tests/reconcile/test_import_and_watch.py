"""`mirage import TENANT` round-trips (import -> validate -> plan: No changes); `apply --watch` re-plans on save."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mirage.config import load_fleet
from mirage.reconcile.watch import watch
from tests.reconcile.helpers import edit, mirage

Conn = psycopg.Connection[Any]


def test_import_writes_yaml_that_validates_and_plans_no_changes(env: Conn, fleet: Path, tmp_path: Path) -> None:
    assert mirage("apply", fleet, "--yes").exit_code == 0
    out = tmp_path / "imported" / "padaria"
    result = mirage("import", "padaria", "--out", out)
    assert result.exit_code == 0, result.output
    assert "Wrote 6 file(s)" in result.stdout
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*.yaml"))
    assert names == [
        "contacts.yaml",
        "conversations/bom-dia.yaml",
        "numbers.yaml",
        "outreach.yaml",
        "personas.yaml",
        "tenant.yaml",
    ]
    assert all(p.read_text().startswith("# yaml-language-server: $schema=") for p in out.rglob("*.yaml"))
    assert "${PADARIA_EVOLUTION_API_KEY}" in (out / "tenant.yaml").read_text()
    fleet_again = load_fleet(out.parent)  # validates: ConfigError otherwise
    assert set(fleet_again.tenants) == {"padaria"}
    planned = mirage("plan", out.parent, "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    assert "No changes." in planned.stdout


def test_import_refuses_to_overwrite_and_unknown_tenants(env: Conn, fleet: Path, tmp_path: Path) -> None:
    assert mirage("apply", fleet, "--yes").exit_code == 0
    out = tmp_path / "padaria"
    assert mirage("import", "padaria", "--out", out).exit_code == 0
    again = mirage("import", "padaria", "--out", out)
    assert again.exit_code == 1 and "--force" in again.output
    assert mirage("import", "padaria", "--out", out, "--force").exit_code == 0
    missing = mirage("import", "nobody", "--out", tmp_path / "nobody")
    assert missing.exit_code == 1 and "'nobody' is not in the database" in missing.output


def test_import_never_writes_outside_its_folder_whatever_a_key_in_the_database_says(
    env: Conn, fleet: Path, tmp_path: Path
) -> None:
    """Tenant admins may write configuration rows through the Data API (RLS allows it): a key is untrusted."""
    assert mirage("apply", fleet, "--yes").exit_code == 0
    env.execute("update t_conversations set key = '../../escaped'")
    env.commit()
    out = tmp_path / "imported" / "padaria"
    result = mirage("import", "padaria", "--out", out)
    assert result.exit_code == 1 and "'../../escaped' is not a valid key" in result.output
    assert not list(tmp_path.rglob("escaped*")) and not out.exists()


def test_watch_runs_again_after_a_saved_change_and_survives_invalid_yaml(fleet: Path) -> None:
    runs: list[float] = []
    errors: list[str] = []
    stop = threading.Event()

    def action() -> None:
        runs.append(time.monotonic())
        load_fleet(fleet)  # what the real action starts with: invalid YAML raises ConfigError

    thread = threading.Thread(
        target=watch,
        args=(fleet, action),
        kwargs={"debounce_ms": 50, "stop_event": stop, "on_error": lambda e: errors.append(str(e))},
    )
    thread.start()
    try:
        _wait(lambda: len(runs) == 1)
        time.sleep(0.3)  # let the watcher start before the first edit
        (fleet / "padaria" / "notes.swp").write_text("ignored")  # not a tenant file: no run
        edit(fleet / "padaria" / "numbers.yaml", "label: Tia Maria", "label: [unclosed")
        _wait(lambda: len(runs) == 2 and len(errors) == 1)
        edit(fleet / "padaria" / "numbers.yaml", "label: [unclosed", "label: Tia Maria B.")
        _wait(lambda: len(runs) == 3)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(runs) == 3 and "numbers.yaml" in errors[0]


def _wait(cond: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the watcher")
        time.sleep(0.02)
