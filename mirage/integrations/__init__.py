"""Outside services: Evolution API (client + simulator) and the LLM (OpenAI + offline generator).

Layer: the I/O adapters, beside mirage.db and independent of it: no SQL here (docs/architecture.md#layers).
May import: httpx, openai, starlette (the simulators), the pure core and the base modules; never db, jobs,
ingest, reconcile, web or the CLI (`layers`). The Evolution event parsing is pure (`evolution-parsing-pure`).
"""
