"""Postgres: connections, the migration runner, and tenant-scoped (RLS) sessions."""
