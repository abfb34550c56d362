"""The imperative shell around the pure core: load YAML, lint, read rows, plan; used by the CLI and watch."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from mirage.config import Fleet, load_fleet
from mirage.config.lint import lint_tenant
from mirage.crypto import CryptoError, keyring
from mirage.db.migrate import status
from mirage.engine.calendar import local_date
from mirage.errors import MirageError, Problem
from mirage.logs import register_secret
from mirage.reconcile.desired import desired_state
from mirage.reconcile.diff import build_plan, new_uuid
from mirage.reconcile.plan import Plan
from mirage.reconcile.resources import DesiredState
from mirage.reconcile.rows import ActualState
from mirage.reconcile.sealing import Sealer, seal_secret
from mirage.reconcile.state import read_for


class SchemaError(MirageError):
    """The database has migrations pending that plan cannot read around."""


def load(
    root: Path, scope: Sequence[str] | None, environ: Mapping[str, str] | None = None
) -> tuple[Fleet, DesiredState]:
    """Validate the YAML under `root` (ConfigError lists every problem) and build the desired state.

    `environ` (default: this process's environment) resolves `${VAR}` references; every secret value read
    is registered with the log redaction filter here, in the shell, before anything can log it.
    """
    env = os.environ if environ is None else environ
    fleet = load_fleet(root, only=list(scope) if scope is not None else None, environ=env)
    desired = desired_state(fleet, environ=env, scope=scope)
    register_secrets(desired)
    return fleet, desired


def register_secrets(desired: DesiredState) -> None:
    """Register every secret value of `desired` for log redaction."""
    for tenant in desired.tenants.values():
        for r in tenant.resources:
            if r.secret is not None:
                register_secret(r.secret.value)


def load_desired(root: Path, scope: Sequence[str] | None, environ: Mapping[str, str] | None = None) -> DesiredState:
    return load(root, scope, environ)[1]


def lint_problems(fleet: Fleet, now: datetime | None = None) -> list[Problem]:
    """Every lint finding of the fleet as an error (what `--strict` blocks on), located at path:line:col."""
    when = now or datetime.now(UTC)
    out = []
    for slug, tenant in fleet.tenants.items():
        for issue in lint_tenant(tenant, local_date(when, tenant.timezone), strict=True):
            file, line, col = fleet.locate(slug, *issue.path, key=issue.key)
            out.append(Problem(file, line, col, issue.message, issue.severity, issue.rule))
    return sorted(out, key=lambda p: (p.path, p.line, p.col, p.message))


def read_actual(conn: psycopg.Connection[Any], desired: DesiredState) -> tuple[ActualState, list[str]]:
    """The rows to compare with, read in a transaction that is then closed; a database with no schema at
    all (never migrated) reads as empty, since apply migrates it first."""
    st = status(conn)
    if st.pending and not st.applied:
        return ActualState.empty(), ["the database has no schema yet: `mirage apply` migrates it first"]
    if st.pending:
        raise SchemaError(
            f"the database schema is not current ({len(st.pending)} migration(s) pending): "
            "run `mirage db migrate`, or `mirage apply`, which migrates first"
        )
    try:
        return read_for(conn, desired), []
    finally:
        conn.rollback()


def secret_sealer(desired: DesiredState) -> Sealer | None:
    """Seals secret fingerprints with the first MIRAGE_SECRET_KEYS key; None when there is no value or no key."""
    if not any(r.secret is not None and r.secret.value for t in desired.tenants.values() for r in t.resources):
        return None
    try:
        key = keyring().keys[0]
    except CryptoError:
        return None  # a plan-only job without the key: apply then cannot tell whether these secrets changed
    return partial(seal_secret, key)


def make_plan(
    conn: psycopg.Connection[Any],
    desired: DesiredState,
    *,
    new_id: Callable[[], str] = new_uuid,
) -> Plan:
    """Plan `desired` against the database behind `conn`."""
    actual, notes = read_actual(conn, desired)
    plan = build_plan(desired, actual, new_id=new_id, seal=secret_sealer(desired))
    return replace(plan, warnings=(*plan.warnings, *notes)) if notes else plan
