"""Fixtures for the Evolution tests.

Real: the simulator (uvicorn on a free loopback port, so the real httpx client code runs), a webhook receiver
served the same way, Postgres and Redis (root conftest). Nothing here is mocked; simulator timing is shortened
with `time_factor`, `qr_interval_s` and `scan_after_s`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mirage.crypto import generate_key
from mirage.integrations.evolution import lifecycle  # the HTTP steps: default_client reads RETRY here
from mirage.integrations.evolution.client import RetryPolicy
from mirage.integrations.evolution_sim import ServerHandle, SimConfig, SimHandle, run_in_thread, serve_in_thread
from mirage.settings import get_settings
from tests.evolution.helpers import Receiver

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, total_time=5.0)


@pytest.fixture(autouse=True)
def secret_keys(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh MIRAGE_SECRET_KEYS for each test, and quick client retries in lifecycle jobs."""
    key = generate_key()
    monkeypatch.setenv("MIRAGE_SECRET_KEYS", key)
    monkeypatch.delenv("EVOLUTION_BASE_URL", raising=False)
    monkeypatch.delenv("EVOLUTION_API_KEY", raising=False)
    monkeypatch.setattr(lifecycle, "RETRY", FAST_RETRY)
    get_settings.cache_clear()
    return key


@pytest.fixture
def make_sim() -> Iterator[Callable[..., SimHandle]]:
    """Start simulators with custom SimConfig fields (fast defaults); all stop after the test."""
    started: list[SimHandle] = []

    def start(**options: Any) -> SimHandle:
        options.setdefault("time_factor", 0.01)
        options.setdefault("seed", 7)
        handle = run_in_thread(SimConfig(**options))
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
def sim(make_sim: Callable[..., SimHandle]) -> SimHandle:
    return make_sim()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free loopback port; `receiver.url` is its base URL."""
    rec = Receiver()
    handle: ServerHandle = serve_in_thread(rec.app)
    rec.url = handle.url
    yield rec
    handle.stop()


@pytest.fixture
def public_url(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> str:
    """MIRAGE_PUBLIC_URL pointing at the receiver, so provisioned instances post their webhooks there."""
    monkeypatch.setenv("MIRAGE_PUBLIC_URL", receiver.url)
    get_settings.cache_clear()
    return receiver.url
