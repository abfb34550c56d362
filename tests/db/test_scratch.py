"""Scratch databases (mirage.db.scratch): a simulation's, dropped at the end of its run, commits without waiting
for the WAL flush; any other keeps the server's durable commits (ADR 0063)."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from mirage.db.scratch import create_database, drop_database


@pytest.mark.parametrize(("durable", "synchronous_commit"), [(True, "on"), (False, "off")])
def test_a_scratch_database_commits_durably_unless_made_for_a_run_that_drops_it(
    server_url: str, durable: bool, synchronous_commit: str
) -> None:
    name = f"mirage_scratch_{secrets.token_hex(3)}"
    url = create_database(server_url, name, migrated=False, durable=durable)
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("show synchronous_commit").fetchone()
        assert row is not None and row[0] == synchronous_commit
    finally:
        drop_database(server_url, name)
