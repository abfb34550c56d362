"""The garbage collector and the tick's views (ADR 0058): paused while rows load and views build, restored as it
was (nested or not); the view cache's first build freezes what is alive once per process, later builds do not.

Real Postgres (the fixture fleet applied with `mirage apply`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mirage.jobs import viewcache
from mirage.jobs.runtime import collector_paused, since_for_snapshot
from mirage.jobs.viewcache import ViewCache
from tests.reconcile.test_tick_view_cache import MONDAY_0900_SP, _apply

Conn = psycopg.Connection[Any]


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector as the test found it, afterwards (enabled, nothing frozen unless it was)."""
    was = gc.isenabled()
    yield
    gc.unfreeze()
    viewcache._freeze_once.cache_clear()
    if was:
        gc.enable()


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("depth", [1, 2])
def test_collector_paused_pauses_then_restores_the_state_it_found(collector: None, enabled: bool, depth: int) -> None:
    (gc.enable if enabled else gc.disable)()
    with collector_paused():
        if depth == 2:
            with collector_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled() is enabled


def test_the_first_build_of_a_process_freezes_once_and_leaves_the_collector_on(
    collector: None, env: Conn, fleet: Path
) -> None:
    _apply(fleet)
    gc.unfreeze()
    viewcache._freeze_once.cache_clear()
    first = ViewCache().load(env, since_for_snapshot(MONDAY_0900_SP))
    env.rollback()
    assert first.rebuilt == 1 and first.views
    assert gc.get_freeze_count() > 0 and gc.isenabled()
    gc.unfreeze()
    again = ViewCache().load(env, since_for_snapshot(MONDAY_0900_SP))  # another cache, the same process
    env.rollback()
    assert again.rebuilt == 1 and again.views == first.views
    assert gc.get_freeze_count() == 0 and gc.isenabled()
