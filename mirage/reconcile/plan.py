"""The plan as a value: items (create / update / delete), summary, fingerprints, hash, JSON (de)serialisation.

A Plan never holds a secret: secret rows carry only the name of their environment variable, and the
fingerprints used to notice a changed secret live in `secrets`. `mirage apply` executes exactly the
items of the Plan it was given (rendered by `mirage plan`, or loaded from `--out plan.json`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from mirage.errors import MirageError
from mirage.reconcile.invisible import reveal_json
from mirage.reconcile.resources import SPEC_BY_NAME, digest

FORMAT_VERSION = 1


class PlanFormatError(MirageError):
    """A saved plan file that this version of Mirage cannot read."""


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "delete": "-"}[self.value]


@dataclass(frozen=True)
class Change:
    """One field of one row: old -> new (refs also by address; sensitive values are never stored)."""

    field: str
    old: Any = None
    new: Any = None
    old_ref: str | None = None
    new_ref: str | None = None
    sensitive: bool = False
    unknown: bool = False  # the new value is known only at apply (a secret whose variable is unset now)


@dataclass(frozen=True)
class Item:
    """One row to create, update or delete, with the ids apply needs (new rows get theirs at plan time)."""

    op: Op
    tenant: str
    spec: str
    address: str
    id: str
    tenant_id: str
    parent_id: str | None = None
    changes: tuple[Change, ...] = ()
    applied_hash: str | None = None
    drift: bool = False
    renamed_from: str | None = None
    secret_env: str | None = None

    @property
    def table(self) -> str:
        return SPEC_BY_NAME[self.spec].table

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "op": self.op.value,
            "address": self.address,
            "table": self.table,
            "spec": self.spec,
            "id": self.id,
            "tenant_id": self.tenant_id,
            "parent_id": self.parent_id,
            "changes": [_change_dict(c) for c in self.changes],
            "applied_hash": self.applied_hash,
            "drift": self.drift,
            "renamed_from": self.renamed_from,
        }
        if self.secret_env:
            out["secret_env"] = self.secret_env
        return out

    @classmethod
    def from_dict(cls, tenant: str, d: Mapping[str, Any]) -> Item:
        if d.get("spec") not in SPEC_BY_NAME:
            raise PlanFormatError(f"plan item {d.get('address')!r}: unknown resource kind {d.get('spec')!r}")
        return cls(
            op=Op(d["op"]),
            tenant=tenant,
            spec=d["spec"],
            address=d["address"],
            id=d["id"],
            tenant_id=d["tenant_id"],
            parent_id=d.get("parent_id"),
            changes=tuple(
                Change(
                    field=c["field"],
                    old=c.get("old"),
                    new=c.get("new"),
                    old_ref=c.get("old_ref"),
                    new_ref=c.get("new_ref"),
                    sensitive=bool(c.get("sensitive", False)),
                    unknown=bool(c.get("unknown", False)),
                )
                for c in d.get("changes", [])
            ),
            applied_hash=d.get("applied_hash"),
            drift=bool(d.get("drift", False)),
            renamed_from=d.get("renamed_from"),
            secret_env=d.get("secret_env"),
        )


def _change_dict(c: Change) -> dict[str, Any]:
    out: dict[str, Any] = {"field": c.field}
    if c.sensitive:
        out["sensitive"] = True  # the value itself is never serialised
    else:
        out["old"] = c.old
        out["new"] = c.new
    if c.old_ref is not None or c.new_ref is not None:
        out["old_ref"], out["new_ref"] = c.old_ref, c.new_ref
    if c.unknown:
        out["unknown"] = True
    return out


@dataclass(frozen=True)
class Summary:
    add: int = 0
    change: int = 0
    destroy: int = 0

    @property
    def total(self) -> int:
        return self.add + self.change + self.destroy

    def to_dict(self) -> dict[str, int]:
        return {"add": self.add, "change": self.change, "destroy": self.destroy}

    @classmethod
    def of(cls, items: tuple[Item, ...] | list[Item]) -> Summary:
        n = {op: 0 for op in Op}
        for i in items:
            n[i.op] += 1
        return cls(n[Op.CREATE], n[Op.UPDATE], n[Op.DELETE])


@dataclass(frozen=True)
class TenantPlan:
    slug: str
    id: str
    prune: bool
    items: tuple[Item, ...]
    exists: bool = True  # False: the tenant row itself is created by this plan

    @property
    def summary(self) -> Summary:
        return Summary.of(self.items)

    def deletions_allowed(self, allow_delete: bool) -> bool:
        return allow_delete or self.prune


@dataclass(frozen=True)
class Plan:
    """Everything `mirage apply` needs, and nothing secret.

    `desired_fingerprint` / `actual_fingerprint` digest the YAML and the rows the plan was computed from;
    apply recomputes both (the rows inside its transaction) and refuses a plan that no longer matches.
    `secrets` maps `slug/name` to the secret's seal at plan time (`sealing.seal_secret`; None: its variable was
    unset, or no secret key was configured, so apply cannot check it).
    """

    tenants: tuple[TenantPlan, ...]
    desired_fingerprint: str
    actual_fingerprint: str
    scope: tuple[str, ...] | None = None
    secrets: Mapping[str, str | None] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def items(self) -> Iterator[Item]:
        for tp in self.tenants:
            yield from tp.items

    @property
    def summary(self) -> Summary:
        return Summary.of(list(self.items))

    @property
    def empty(self) -> bool:
        return not any(tp.items for tp in self.tenants)

    def blocked(self, allow_delete: bool) -> list[Item]:
        """Deletions the policy forbids: a tenant without `prune: true` and no --allow-delete."""
        return [
            i for tp in self.tenants if not tp.deletions_allowed(allow_delete) for i in tp.items if i.op is Op.DELETE
        ]

    def to_dict(self, *, with_hash: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "scope": list(self.scope) if self.scope is not None else None,
            "fingerprints": {
                "desired": self.desired_fingerprint,
                "actual": self.actual_fingerprint,
                "secrets": dict(sorted(self.secrets.items())),
            },
            "summary": self.summary.to_dict(),
            "warnings": list(self.warnings),
            "tenants": [
                {
                    "slug": tp.slug,
                    "id": tp.id,
                    "exists": tp.exists,
                    "prune": tp.prune,
                    "summary": tp.summary.to_dict(),
                    "items": [i.to_dict() for i in tp.items],
                }
                for tp in self.tenants
            ],
        }
        if with_hash:
            out = {"format_version": FORMAT_VERSION, "plan_hash": self.plan_hash, **out}
        return out

    @cached_property
    def plan_hash(self) -> str:
        """A digest of the whole plan (items, fingerprints, scope): recorded in t_applies."""
        return digest(self.to_dict(with_hash=False))

    def to_json(self) -> str:
        """The plan file: UTF-8 JSON; bidi controls and zero-width characters are written as \\u escapes."""
        return reveal_json(json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str)) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise PlanFormatError(f"not a plan file: {e}") from e
        if not isinstance(data, dict) or "format_version" not in data:
            raise PlanFormatError("not a plan file: no format_version")
        if data["format_version"] != FORMAT_VERSION:
            raise PlanFormatError(
                f"plan format_version {data['format_version']} is not supported (this Mirage reads {FORMAT_VERSION})"
            )
        try:
            fp = data["fingerprints"]
            plan = cls(
                tenants=tuple(
                    TenantPlan(
                        slug=t["slug"],
                        id=t["id"],
                        prune=bool(t["prune"]),
                        exists=bool(t.get("exists", True)),
                        items=tuple(Item.from_dict(t["slug"], i) for i in t["items"]),
                    )
                    for t in data["tenants"]
                ),
                desired_fingerprint=fp["desired"],
                actual_fingerprint=fp["actual"],
                scope=tuple(data["scope"]) if data.get("scope") is not None else None,
                secrets=dict(fp.get("secrets") or {}),
                warnings=tuple(data.get("warnings") or ()),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise PlanFormatError(f"damaged plan file: {e!r}") from e
        if data.get("plan_hash") != plan.plan_hash:
            raise PlanFormatError("plan file was edited: its plan_hash is missing or does not match its content")
        return plan
