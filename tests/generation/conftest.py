"""Fixtures for the generation tests.

Real: the OpenAI-compatible simulator (uvicorn on a free loopback port), so the real `openai` client code runs;
Postgres for the tenant key (root conftest). Nothing is mocked; faults come from the simulator's /sim/faults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mirage.integrations.openai_sim import FaultConfig, OpenAISimConfig, OpenAISimHandle, run_openai_sim
from mirage.settings import get_settings
from tests.runtime.conftest import make_harness  # noqa: F401 - rounds driven against the Evolution simulator

KEY = "sk-test-4f1c9a7e2b8d6f0a3c5e7b9d1f2a4c6e"


@pytest.fixture(autouse=True)
def no_openai_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OPENAI_* from the developer's shell leaks into a test, nor an endpoint's failures from another test."""
    from mirage.integrations.openai.client import reset_breakers

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    reset_breakers()
    yield
    reset_breakers()
    get_settings.cache_clear()


@pytest.fixture
def make_openai_sim() -> Iterator[Callable[..., OpenAISimHandle]]:
    """Start simulators (`api_key=` demands that key; fault fields go to FaultConfig); all stop after the test."""
    started: list[OpenAISimHandle] = []

    def start(api_key: str | None = KEY, seed: int = 7, **faults: Any) -> OpenAISimHandle:
        handle = run_openai_sim(OpenAISimConfig(api_key=api_key, seed=seed, faults=FaultConfig(**faults)))
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
def openai_sim(make_openai_sim: Callable[..., OpenAISimHandle]) -> OpenAISimHandle:
    return make_openai_sim()
