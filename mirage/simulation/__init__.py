"""`mirage simulate`: the real runtime in virtual time against the Evolution simulator, and its report.

Layer: simulation, between the command helpers and web (docs/architecture.md#layers). May import: web, ingest,
jobs, reconcile, db, integrations, the pure core and the base modules; imported only by the demo and the CLI
(`layers`). Its driver is the one place outside mirage.jobs that runs RQ jobs (ADR 0038).
"""
