"""The GitOps reconciler: read actual rows, diff (pure), plan (pure), apply (one transaction).

Layer: the shell that acts, with mirage.ingest and mirage.jobs (docs/architecture.md#layers). May import:
those two, db, the pure core and the base modules; never web, the demo or the CLI (`layers`). Its diff, plan,
render, effects and sealing modules are pure: no I/O, no settings (`pure-core`).
"""
