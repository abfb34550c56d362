"""Actual state: the configuration rows of the selected tenants, one query per table, sent in one pipeline.

The number of queries is fixed (one per configuration table) whatever the number of rows or tenants.
Values are normalised here (resources.normalise), so the diff compares like with like. The values
themselves (Row, ActualState) live in rows.py, which the pure diff imports without psycopg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from mirage.reconcile.resources import SPECS, TENANT, DesiredState, TableSpec, normalise
from mirage.reconcile.rows import ActualState, Row

__all__ = ["QUERIES", "ActualState", "Row", "read_for", "read_state"]


_SCOPE = "(slug = any(%(slugs)s) or (%(all)s and archived_at is null))"


def _select(spec: TableSpec) -> str:
    cols = ["id"]
    if spec is TENANT:
        cols += ["id", "null", "slug"]
    else:
        cols += ["tenant_id", spec.parent_column or "null", "null"]
    cols += [f.select or f.name for f in spec.fields]
    cols += ["applied_hash", *spec.runtime]
    where = _SCOPE if spec is TENANT else f"tenant_id in (select id from t_tenants where {_SCOPE})"
    return f"select {', '.join(cols)} from {spec.table} where {where}"


QUERIES: Mapping[str, str] = {s.name: _select(s) for s in SPECS}


def _rows(spec: TableSpec, raw: Sequence[tuple[Any, ...]]) -> tuple[Row, ...]:
    fields = spec.fields
    n = len(fields)
    out = []
    for t in raw:
        values = {f.name: normalise(f.type, t[4 + i]) for i, f in enumerate(fields)}
        runtime = {name: t[5 + n + j] for j, name in enumerate(spec.runtime)}
        if t[3] is not None:
            runtime["slug"] = t[3]
        out.append(
            Row(
                id=str(t[0]),
                tenant_id=str(t[1]),
                parent_id=str(t[2]) if t[2] is not None else None,
                values=values,
                applied_hash=t[4 + n],
                runtime=runtime,
            )
        )
    return tuple(out)


def read_state(conn: psycopg.Connection[Any], slugs: Sequence[str], *, all_tenants: bool) -> ActualState:
    """Read the configuration of `slugs` (and, with all_tenants, of every tenant not archived).

    Runs in the caller's transaction, so apply can read inside its own after taking the lock.
    """
    params = {"slugs": list(slugs), "all": all_tenants}
    cursors = []
    with conn.pipeline():
        for spec in SPECS:
            cur = conn.cursor(row_factory=tuple_row)
            cur.execute(QUERIES[spec.name], params)
            cursors.append((spec, cur))
    rows = {spec.name: _rows(spec, cur.fetchall()) for spec, cur in cursors}
    slug_by_id = {r.id: str(r.runtime["slug"]) for r in rows[TENANT.name]}
    return ActualState(rows=rows, slugs=slug_by_id)


def read_for(conn: psycopg.Connection[Any], desired: DesiredState) -> ActualState:
    """The actual state a plan for `desired` compares against: its tenants, or every tenant when unscoped."""
    slugs = sorted(set(desired.tenants) | set(desired.scope or ()))
    return read_state(conn, slugs, all_tenants=desired.scope is None)
