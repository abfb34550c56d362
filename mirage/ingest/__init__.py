"""Webhook ingest: store each Evolution event once (t_webhook_events) and normalise it (t_messages, statuses).

Layer: the shell that acts, with mirage.jobs and mirage.reconcile, which it may import and be imported by
(docs/architecture.md#layers). May import: those two, db, integrations, the pure core and the base modules;
never web, the demo or the CLI (`layers`).
"""
