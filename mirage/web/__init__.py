"""The Starlette service: webhooks, the metrics page, health.

Layer: web, above the shell (docs/architecture.md#layers). May import: ingest, jobs, reconcile, db,
integrations, the pure core and the base modules; imported only by the demo and the CLI (`layers`).
"""
