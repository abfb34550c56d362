"""The example tenants in tenants.d/ apply, plan as `No changes.` afterwards, and round-trip through import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.reconcile.helpers import count, mirage, summary

EXAMPLES = Path(__file__).resolve().parents[2] / "tenants.d"


@pytest.fixture
def example_env(env: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> psycopg.Connection[Any]:
    values = {"EVOLUTION_API_KEY": "evo-example-global-key-01"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("EVOLUTION_BASE_URL", "http://evolution.example:8080")
    # What `mirage import` names the secrets of each tenant:
    for slug in ("PADARIA_DO_ZE", "AGENCIA_AURORA"):
        monkeypatch.setenv(f"{slug}_EVOLUTION_API_KEY", values["EVOLUTION_API_KEY"])
    return env


def test_example_tenants_apply_then_plan_no_changes_and_round_trip_through_import(
    example_env: psycopg.Connection[Any], tmp_path: Path
) -> None:
    slugs = sorted(p.name for p in EXAMPLES.iterdir() if (p / "tenant.yaml").is_file())
    assert slugs, "no example tenants in tenants.d/"
    planned = mirage("plan", EXAMPLES, "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    adds = summary(planned.stdout)[0]  # type: ignore[index]
    applied = mirage("apply", EXAMPLES, "--yes")
    assert applied.exit_code == 0, applied.output
    assert count(example_env, "t_tenants") == len(slugs) and count(example_env, "t_applies") == len(slugs)
    assert f"Apply complete: {adds} added" in applied.stdout
    assert mirage("plan", EXAMPLES, "--detailed-exitcode").exit_code == 0
    for slug in slugs:
        imported = mirage("import", slug, "--out", tmp_path / slug)
        assert imported.exit_code == 0, imported.output
    again = mirage("plan", tmp_path, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes." in again.stdout
