"""A local OpenAI-compatible server (`mirage sim openai --port 8091`) that answers in character, with faults.

    from mirage.integrations.openai_sim import OpenAISimConfig, run_openai_sim
    with run_openai_sim(OpenAISimConfig(seed=7)) as sim:   # sim.base_url -> http://127.0.0.1:PORT/v1
        sim.faults(rate_limit_next=1, retry_after_s=0.05)

docs/generation.md lists the routes and faults.
"""

from __future__ import annotations

from mirage.integrations.openai_sim.app import create_openai_sim_app
from mirage.integrations.openai_sim.config import FaultConfig, OpenAISimConfig
from mirage.integrations.openai_sim.runner import OpenAISimHandle, run_openai_sim

__all__ = ["FaultConfig", "OpenAISimConfig", "OpenAISimHandle", "create_openai_sim_app", "run_openai_sim"]
