"""RQ jobs and their registration: thin shells that load state, call mirage.engine, and act.

Layer: the shell that acts, with mirage.ingest and mirage.reconcile (docs/architecture.md#layers). May
import: those two, db, integrations, the pure core, the base modules and rq, which is imported nowhere else
(`rq-in-jobs`); never web, the demo or the CLI (`layers`). Every job function wears `wrapper.job`.
"""
