"""Throw-away databases on a server: a fresh, migrated database for a test session or a benchmark run."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from mirage.db.migrate import migrate


def database_url_for(server_url: str, name: str) -> str:
    """`server_url` with its database replaced by `name`."""
    return make_conninfo(server_url, dbname=name)


def create_database(server_url: str, name: str, *, migrated: bool = True, durable: bool = True) -> str:
    """Create database `name` (replacing one left over under that name) and return its URL, migrated.

    Not `durable`: its sessions commit without waiting for the WAL to reach the disk (`synchronous_commit = off`),
    for a database dropped at the end of its run (a simulation, ADR 0063): the same transactions, visible at the
    same moment to every other session, only not kept through a crash of the server."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        if not durable:
            admin.execute(sql.SQL("alter database {} set synchronous_commit = off").format(sql.Identifier(name)))
    url = database_url_for(server_url, name)
    if migrated:
        with psycopg.connect(url) as conn:
            migrate(conn)
    return url


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
