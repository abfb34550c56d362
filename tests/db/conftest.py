"""Fixtures for the database tests: a connection whose work is rolled back, and two tenant graphs in it.

Everything runs against the session database that tests/conftest.py migrated. `conn` shares one
connection per module whose transaction is never committed (tenants A and B are built once in it) and
wraps each test in a savepoint, so tests are fast, see only their own changes, and leave nothing behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from tests.db.factories import TenantGraph, make_tenant_graph


@pytest.fixture(scope="module")
def _module_conn(database_url: str) -> Iterator[tuple[psycopg.Connection[Any], tuple[TenantGraph, TenantGraph]]]:
    """One owner connection per module, inside one transaction that is never committed, with tenants A and B."""
    c = psycopg.connect(database_url, row_factory=dict_row)
    try:
        graphs = make_tenant_graph(c), make_tenant_graph(c)
        yield c, graphs
    finally:
        c.rollback()
        c.close()


@pytest.fixture
def conn(
    _module_conn: tuple[psycopg.Connection[Any], tuple[TenantGraph, TenantGraph]],
) -> Iterator[psycopg.Connection[Any]]:
    """The module's connection as the owner, inside a savepoint rolled back after the test (role and claims too)."""
    c, _ = _module_conn
    c.execute("savepoint per_test")
    try:
        yield c
    finally:
        c.execute("rollback to savepoint per_test")
        c.execute("release savepoint per_test")
        c.execute("reset role")


@pytest.fixture
def two_tenants(
    conn: psycopg.Connection[Any], _module_conn: tuple[psycopg.Connection[Any], tuple[TenantGraph, TenantGraph]]
) -> tuple[TenantGraph, TenantGraph]:
    """Tenants A and B, each with one row in every tenant-scoped table (never committed)."""
    return _module_conn[1]


@pytest.fixture
def empty_database(server_url: str) -> Iterator[str]:
    """URL of a brand-new empty database on the test server, dropped after the test."""
    name = f"mirage_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(server_url)
    params["dbname"] = name
    try:
        yield make_conninfo(**params)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
