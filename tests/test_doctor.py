"""`mirage doctor` reports which services are in use and fails clearly when one is unreachable."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mirage.cli import cli


def test_doctor_reports_postgres_redis_and_migrations(database_url: str, redis_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mirage.crypto import generate_key

    monkeypatch.setenv("MIRAGE_SECRET_KEYS", generate_key())
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.output)["checks"]}
    assert checks["postgres"]["level"] == "OK" and "PostgreSQL" in checks["postgres"]["summary"]
    assert checks["redis"]["level"] == "OK" and "Redis" in checks["redis"]["summary"]
    assert checks["migrations"]["level"] == "OK"
    assert checks["secret_keys"]["level"] == "OK"
    assert {"evolution", "openai"} <= set(checks)


def test_doctor_exits_non_zero_with_a_one_line_reason_when_postgres_is_unreachable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", "postgresql://mirage:hunter2pass@127.0.0.1:1/mirage")
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 1
    line = next(ln for ln in result.output.splitlines() if "postgres" in ln and "FAIL" in ln)
    assert "cannot connect" in line
    assert "hunter2pass" not in result.output and "***" in line


def test_doctor_json_is_valid_and_masks_passwords(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", "postgresql://mirage:hunter2pass@127.0.0.1:1/mirage")
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["checks"][0]["level"] == "FAIL"
    assert "hunter2pass" not in result.output


def test_secret_keys_are_a_failure_with_a_real_database_and_a_warning_when_embedded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mirage.doctor import Level, check_secret_keys
    from mirage.settings import Settings

    embedded = check_secret_keys(Settings.from_env({}))
    assert embedded.level is Level.WARN and "local key" in embedded.summary
    real = check_secret_keys(Settings.from_env({"DATABASE_URL": "postgresql://db.example/mirage"}))
    assert real.level is Level.FAIL and "MIRAGE_SECRET_KEYS" in real.summary
