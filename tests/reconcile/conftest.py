"""Reconciler fixtures: a writable copy of the fixture fleet, secrets in the environment, the CLI in process.

Real: Postgres (`db`, truncated after each test) and Redis (`redis`, flushed before each test) from
tests/conftest.py; every apply here enqueues its effects into that Redis.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib

from mirage.crypto import generate_key
from tests.reconcile.helpers import FIXTURES, SECRETS


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """A writable copy of tests/reconcile/fixtures/fleet (tenant `padaria`)."""
    root = tmp_path / "tenants.d"
    shutil.copytree(FIXTURES / "fleet", root)
    return root


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The fixture tenant's secrets and a Fernet key, in the environment."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MIRAGE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("MIRAGE_ACTOR", "test-runner")
    return dict(SECRETS)


@pytest.fixture
def env(
    db: psycopg.Connection,  # type: ignore[type-arg]
    redis: redis_lib.Redis,
    secrets_env: dict[str, str],
) -> Iterator[psycopg.Connection]:  # type: ignore[type-arg]
    """Everything a plan/apply test needs: the database connection (dict rows), Redis flushed, secrets set."""
    yield db
