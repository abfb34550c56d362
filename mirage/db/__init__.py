"""Postgres: connections, the migration runner, and tenant-scoped (RLS) sessions.

Layer: the I/O adapters, beside mirage.integrations and independent of it (docs/architecture.md#layers).
May import: psycopg, the pure core (config, engine) and the base modules (errors, settings, crypto, backends,
embedded, resources); never jobs, ingest, reconcile, web, the demo or the CLI (`layers`).
"""
