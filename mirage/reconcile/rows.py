"""The actual state as values: configuration rows read from the database, compared by the diff (pure).

state.py reads them (SQL); diff.py, effects.py and the importer only ever see these values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mirage.reconcile.resources import SPECS, TENANT, digest


@dataclass(frozen=True, slots=True)
class Row:
    """One configuration row: ids, normalised compared values, applied_hash, runtime columns (read only)."""

    id: str
    tenant_id: str
    parent_id: str | None
    values: Mapping[str, Any]
    applied_hash: str | None
    runtime: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActualState:
    """Rows by spec name; `slugs` maps tenant id -> slug for the tenants read."""

    rows: Mapping[str, tuple[Row, ...]]
    slugs: Mapping[str, str]

    @property
    def tenants(self) -> tuple[Row, ...]:
        return self.rows.get(TENANT.name, ())

    def fingerprint(self) -> str:
        """A digest of every compared value, id, applied_hash and tenant slug (other runtime columns excluded)."""
        return digest(
            [
                [
                    spec.name,
                    [
                        [
                            r.id,
                            r.parent_id,
                            [r.values.get(f.name) for f in spec.fields],
                            r.applied_hash,
                            *([r.runtime.get("slug")] if spec is TENANT else []),
                        ]
                        for r in sorted(self.rows.get(spec.name, ()), key=lambda r: r.id)
                    ],
                ]
                for spec in SPECS
            ]
        )

    @classmethod
    def empty(cls) -> ActualState:
        return cls(rows={s.name: () for s in SPECS}, slugs={})
