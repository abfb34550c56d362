"""The diff: build_plan(desired, actual) -> Plan, a pure function of its arguments.

Rows are matched by natural key (the address), then by a previous key (a rename is an update).
References between rows are resolved to ids here: an existing row keeps its id, a new row gets one
from `new_id`, so children can point at parents created by the same apply and a saved plan applies
exactly. Tables are processed parents first, so a child's key can name its (possibly renamed) parent.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from mirage.errors import MirageError
from mirage.reconcile.plan import Change, Item, Op, Plan, TenantPlan
from mirage.reconcile.resources import (
    REF,
    SPEC_BY_NAME,
    SPECS,
    TENANT,
    DesiredState,
    DesiredTenant,
    Ref,
    Resource,
    TableSpec,
    digest,
    normalise,
    values_hash,
)
from mirage.reconcile.rows import ActualState, Row
from mirage.reconcile.sealing import Sealer
from mirage.reconcile.sealing import fingerprint as secret_fingerprint


class DesiredStateError(MirageError):
    """The desired state refers to something it does not declare (the loader normally catches this first)."""


def new_uuid() -> str:
    return str(uuid.uuid4())


def _key_part(spec: TableSpec, alternatives: tuple[str, ...], values: Mapping[str, Any], key_of: dict[str, str]) -> str:
    for col in alternatives:
        v = values.get(col)
        if v is not None:
            return key_of.get(v, v) if spec.by_name[col].type == REF else str(v)
    return ""


class _TenantDiff:
    """The diff of one tenant; keeps the id <-> address maps that resolve references and parents."""

    def __init__(
        self,
        slug: str,
        desired: DesiredTenant | None,
        rows: Mapping[str, list[Row]],
        tenant_row: Row | None,
        new_id: Callable[[], str],
        seal: Sealer | None = None,
    ) -> None:
        self.slug = slug
        self.seal = seal
        self.desired = desired
        self.rows = rows
        self.new_id = new_id
        self.tenant_id = tenant_row.id if tenant_row else new_id()
        self.tenant_row = tenant_row
        self.addr_of: dict[str, str] = {}  # row id -> address (the desired one when matched)
        self.id_of: dict[str, str] = {}  # address -> row id
        self.key_of: dict[str, str] = {}  # row id -> key string (what a ref contributes to a child's key)
        self.items: list[Item] = []
        self.secrets: dict[str, str | None] = {}

    def run(self) -> TenantPlan:
        wanted: dict[str, list[Resource]] = defaultdict(list)
        for r in self.desired.resources if self.desired else ():
            wanted[r.spec].append(r)
        for spec in SPECS:
            rows = [self.tenant_row] if spec is TENANT and self.tenant_row else self.rows.get(spec.name, [])
            self._table(spec, wanted.get(spec.name, []), rows)
        return TenantPlan(
            slug=self.slug,
            id=self.tenant_id,
            prune=bool(self.desired and self.desired.prune),
            items=tuple(self.items),
            exists=self.tenant_row is not None,
        )

    def _row_address(self, spec: TableSpec, row: Row) -> tuple[str, str]:
        """The row's address in the desired naming (its parent possibly renamed) and its key string."""
        parent = self.addr_of.get(row.parent_id or "") if spec.parent else None
        parts = [_key_part(spec, alts, row.values, self.key_of) for alts in spec.key]
        return spec.address(parent, parts), "~".join(parts)

    def _table(self, spec: TableSpec, wanted: list[Resource], rows: list[Row]) -> None:
        by_addr: dict[str, Row] = {}
        key_str: dict[str, str] = {}
        for r in rows:
            addr, key_str[r.id] = self._row_address(spec, r)
            by_addr[addr] = r
        wanted_addrs = {r.address: r for r in wanted}
        pairs: list[tuple[Resource, Row | None, str | None]] = []
        renames: list[Resource] = []
        for addr, res in wanted_addrs.items():
            row = by_addr.pop(addr, None)
            if row is None and res.previous:
                renames.append(res)
            else:
                pairs.append((res, row, None))
        for res in renames:
            # A previous key still declared by another resource is that resource's, not a rename source.
            prev = next(
                (
                    p
                    for p in res.previous
                    if spec.address(res.parent, p) in by_addr and spec.address(res.parent, p) not in wanted_addrs
                ),
                None,
            )
            row = by_addr.pop(spec.address(res.parent, prev), None) if prev else None
            pairs.append((res, row, "~".join(prev) if prev and row else None))
        for res, row, renamed_from in pairs:
            rid = row.id if row else (self.tenant_id if spec is TENANT else self.new_id())
            self.addr_of[rid] = res.address
            self.id_of[res.address] = rid
            self.key_of[rid] = "~".join(res.parts)
            values = self._desired_values(spec, res, rid)
            if row is None:
                self._create(spec, res, rid, values)
            else:
                self._update(spec, res, row, values, renamed_from)
        for addr, row in sorted(by_addr.items()):  # rows come in heap order: name deletions in a stable one
            self.addr_of[row.id] = addr
            self.key_of[row.id] = key_str[row.id]
            self.items.append(Item(Op.DELETE, self.slug, spec.name, addr, row.id, self.tenant_id, row.parent_id))

    def _resolve(self, res: Resource, ref: Any) -> str | None:
        if ref is None:
            return None
        addr = ref.address if isinstance(ref, Ref) else str(ref)
        rid = self.id_of.get(addr)
        if rid is None:
            raise DesiredStateError(f"{self.slug}: {res.address} refers to {addr}, which is not declared")
        return rid

    def _desired_values(self, spec: TableSpec, res: Resource, rid: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in spec.fields:
            v = res.values.get(f.name)
            out[f.name] = self._resolve(res, v) if f.type == REF else normalise(f.type, v)
        if res.secret is not None:
            name = str(res.values.get("name"))
            fp = secret_fingerprint(self.tenant_id, name, res.secret.value) if res.secret.value is not None else None
            out["fingerprint"] = fp
            self.secrets[f"{self.slug}/{name}"] = self.seal(fp) if fp is not None and self.seal else None
        return out

    def _parent_id(self, spec: TableSpec, res: Resource) -> str | None:
        if not spec.parent:
            return None
        pid = self.id_of.get(res.parent or "")
        if pid is None:
            raise DesiredStateError(f"{self.slug}: {res.address} has no parent {res.parent}")
        return pid

    def _change(self, spec: TableSpec, name: str, old: Any, new: Any) -> Change:
        f = spec.by_name[name]
        if f.sensitive:
            return Change(f.name, sensitive=True, unknown=new is None)
        if f.type == REF:
            return Change(
                f.name,
                old,
                new,
                old_ref=self.addr_of.get(old) if old else None,
                new_ref=self.addr_of.get(new) if new else None,
            )
        return Change(f.name, old, new)

    def _hash(self, spec: TableSpec, res: Resource, values: Mapping[str, Any]) -> str | None:
        if res.secret is not None:
            return None  # derived from the secret: computed at apply, never carried by the plan
        return values_hash(spec, values)

    def _create(self, spec: TableSpec, res: Resource, rid: str, values: dict[str, Any]) -> None:
        changes = tuple(self._change(spec, f.name, None, values[f.name]) for f in spec.fields if f.insert)
        self.items.append(
            Item(
                Op.CREATE,
                self.slug,
                spec.name,
                res.address,
                rid,
                self.tenant_id,
                self._parent_id(spec, res),
                changes,
                self._hash(spec, res, values),
                secret_env=res.secret.env if res.secret else None,
            )
        )

    def _update(
        self, spec: TableSpec, res: Resource, row: Row, values: dict[str, Any], renamed_from: str | None
    ) -> None:
        changed = [
            f.name
            for f in spec.fields
            if values[f.name] != row.values.get(f.name) or (f.sensitive and values[f.name] is None)
        ]
        if not changed:
            return
        drift = row.applied_hash is not None and values_hash(spec, row.values) != row.applied_hash
        self.items.append(
            Item(
                Op.UPDATE,
                self.slug,
                spec.name,
                res.address,
                row.id,
                self.tenant_id,
                row.parent_id,
                tuple(self._change(spec, n, row.values.get(n), values[n]) for n in changed),
                self._hash(spec, res, values),
                drift=drift,
                renamed_from=renamed_from,
                secret_env=res.secret.env if res.secret else None,
            )
        )


def desired_fingerprint(desired: DesiredState) -> str:
    """A digest of the desired state: values normalised, refs by address, secrets by variable name only."""
    out = []
    for slug in sorted(desired.tenants):
        t = desired.tenants[slug]
        res = []
        for r in t.resources:
            spec = SPEC_BY_NAME[r.spec]
            vals = [
                (v.address if isinstance(v, Ref) else v) if f.type == REF else normalise(f.type, v)
                for f in spec.fields
                for v in (r.values.get(f.name),)
            ]
            res.append(
                [r.spec, r.address, r.parent, [list(p) for p in r.previous], vals, r.secret.env if r.secret else None]
            )
        res.sort(key=lambda x: (str(x[0]), str(x[1])))
        out.append([slug, t.prune, res])
    return digest(out)


def build_plan(
    desired: DesiredState,
    actual: ActualState,
    *,
    new_id: Callable[[], str] = new_uuid,
    seal: Sealer | None = None,
) -> Plan:
    """Diff desired against actual; pure apart from `new_id` (inject a deterministic one in tests).

    `seal` keys a secret's fingerprint (sealing.seal_secret with a key the shell holds) for the plan's
    `secrets`; without it they are None.
    """
    by_tenant: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for spec in SPECS[1:]:
        for row in actual.rows.get(spec.name, ()):
            by_tenant[row.tenant_id][spec.name].append(row)
    tenant_rows = {str(r.runtime["slug"]): r for r in actual.tenants}
    skipped = set(desired.skipped)
    slugs = set(desired.tenants)
    for slug, row in tenant_rows.items():
        in_scope = desired.scope is None or slug in desired.scope
        if in_scope and not row.values.get("archived"):
            slugs.add(slug)  # only in the database: a tenant deletion (archived), if allowed
    tenants = []
    secrets: dict[str, str | None] = {}
    for slug in sorted(slugs - skipped):
        tenant_row = tenant_rows.get(slug)
        rows = by_tenant.get(tenant_row.id, {}) if tenant_row else {}
        diff = _TenantDiff(slug, desired.tenants.get(slug), rows, tenant_row, new_id, seal)
        tenants.append(diff.run())
        secrets.update(diff.secrets)
    return Plan(
        tenants=tuple(tenants),
        desired_fingerprint=desired_fingerprint(desired),
        actual_fingerprint=actual.fingerprint(),
        scope=desired.scope,
        secrets=secrets,
        warnings=tuple(desired.warnings),
    )
