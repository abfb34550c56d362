"""Evolution event parsing is pure: importing it loads no HTTP, database, queue, web or settings module.

`.importlinter` checks the import statements; this checks what a fresh interpreter actually loads, which also
catches a heavy package `__init__` (the import graph does not count it, Python runs it all the same).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PARSING = (
    "mirage.integrations.evolution.envelope",
    "mirage.integrations.evolution.events",
    "mirage.integrations.evolution.models",
    "mirage.integrations.evolution.naming",
)
IO_MODULES = ("httpx", "psycopg", "psycopg_pool", "redis", "rq", "starlette", "openai", "mirage.settings")


@pytest.mark.parametrize("module", PARSING)
def test_importing_evolution_parsing_loads_no_io_library(module: str) -> None:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert sorted(m for m in IO_MODULES if m in loaded) == []


def test_the_webhook_service_and_its_follow_up_never_load_the_worker_side() -> None:
    """`mirage serve` enqueues `on_message` by name after it stores a message event; loading the runtime's
    rounds (the text generator, the OpenAI SDK) there would cost seconds of CPU on the first event and tens of
    megabytes for good."""
    code = (
        "import sys, json, mirage.web.app, mirage.web.webhooks as w; "
        "assert w._follow_up.__module__ == 'mirage.web.webhooks'; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert "mirage.jobs.follow_ups" in loaded
    assert sorted(m for m in ("openai", "mirage.jobs.rounds", "mirage.jobs.text") if m in loaded) == []
