"""apply: execute exactly the items of a Plan in one transaction, under an advisory lock; effects after commit.

Order inside the transaction: take the lock (waiting up to a timeout, then naming the holder), re-read
the actual state and refuse a stale plan, per table parents -> children update and insert (COPY), then
delete children -> parents, then one t_applies row per tenant. Any error rolls everything back. Only after
COMMIT are the runtime jobs enqueued (a rolled-back apply never provisions anything).
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from mirage.crypto import Keyring, keyring
from mirage.errors import MirageError, PolicyError
from mirage.reconcile.diff import desired_fingerprint
from mirage.reconcile.effects import Effect, effects
from mirage.reconcile.plan import Item, Op, Plan, Summary
from mirage.reconcile.resources import (
    JSON,
    SPEC_BY_NAME,
    SPECS,
    TENANT,
    DesiredState,
    Field,
    SecretValue,
    TableSpec,
    canonical_json,
    values_hash,
)
from mirage.reconcile.sealing import fingerprint, seal_secret
from mirage.reconcile.state import read_for
from mirage.settings import get_settings

log = logging.getLogger(__name__)

# pg_advisory_xact_lock(int4, int4): "mira" / "rcnl". One reconciler writes a database at a time.
LOCK_KEYS = (0x6D697261, 0x72636E6C)
SECRETS = SPEC_BY_NAME["secrets"]


class StalePlanError(MirageError):
    """The YAML, a secret or the database changed since the plan was made: plan again."""


class RefusedByDatabaseError(MirageError):
    """Postgres refused a value or a constraint of the plan (a number out of range, a NUL character); rolled back."""


class MissingSecretError(MirageError):
    """A secret's environment variable is unset at apply time; nothing was written."""


@dataclass(frozen=True)
class Holder:
    """Who holds the reconciler lock, from pg_locks + pg_stat_activity."""

    pid: int
    application_name: str
    since: datetime | None

    def __str__(self) -> str:
        since = f", since {self.since:%Y-%m-%d %H:%M:%S %Z}" if self.since else ""
        return f"{self.application_name or 'unknown'} (pid {self.pid}{since})"


class LockBusyError(MirageError):
    """Another apply held the reconciler lock for longer than --lock-timeout."""

    def __init__(self, holder: Holder | None, waited: float) -> None:
        self.holder = holder
        who = str(holder) if holder else "another session (it has just released it; try again)"
        super().__init__(f"another apply holds the lock: {who}; gave up after {waited:.0f} s (--lock-timeout)")


@dataclass(frozen=True)
class ApplyResult:
    apply_id: str | None
    plan_hash: str
    actor: str
    summary: Summary
    effects: tuple[Effect, ...] = ()
    enqueued: tuple[Effect, ...] = ()
    effect_errors: tuple[tuple[Effect, str], ...] = ()


def current_actor(environ: Mapping[str, str] | None = None) -> str:
    """Who applies: $MIRAGE_ACTOR, else the CI's user (GitHub, GitLab, Bitbucket), else user@host."""
    if environ is None and (configured := get_settings().actor):
        return configured  # MIRAGE_ACTOR from the environment or ./.env
    env = os.environ if environ is None else environ
    if env.get("MIRAGE_ACTOR"):
        return env["MIRAGE_ACTOR"]
    for var, ci in (
        ("GITHUB_ACTOR", "github-actions"),
        ("GITLAB_USER_LOGIN", "gitlab-ci"),
        ("BITBUCKET_STEP_TRIGGERER_UUID", "bitbucket"),
    ):
        if env.get(var):
            return f"{env[var]} ({ci})"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def application_name(actor: str) -> str:
    """What pg_stat_activity shows for an apply (and what a waiting apply prints): actor and host."""
    return f"mirage apply by {actor} on {socket.gethostname()}"[:63]


# The lock ----------------------------------------------------------------------------------------------

_HOLDER_SQL = """
select a.pid, a.application_name, coalesce(a.xact_start, a.backend_start)
from pg_locks l join pg_stat_activity a on a.pid = l.pid
where l.locktype = 'advisory' and l.granted and l.classid::bigint = %s and l.objid::bigint = %s and l.objsubid = 2
  and l.database = (select oid from pg_database where datname = current_database())
limit 1
"""


def lock_holder(conn: psycopg.Connection[Any]) -> Holder | None:
    row = conn.cursor(row_factory=tuple_row).execute(_HOLDER_SQL, LOCK_KEYS).fetchone()
    return Holder(int(row[0]), str(row[1] or ""), row[2]) if row else None


def take_lock(
    conn: psycopg.Connection[Any], timeout: float, on_wait: Callable[[Holder | None], None] | None = None
) -> None:
    """Take the transaction-scoped reconciler lock, waiting up to `timeout` seconds (then LockBusyError)."""
    cur = conn.cursor(row_factory=tuple_row)
    started = time.monotonic()
    told = False
    while True:
        row = cur.execute("select pg_try_advisory_xact_lock(%s, %s)", LOCK_KEYS).fetchone()
        if row and row[0]:
            return
        holder = lock_holder(conn)
        waited = time.monotonic() - started
        if waited >= timeout:
            raise LockBusyError(holder, waited)
        if not told and on_wait is not None:
            on_wait(holder)
            told = True
        time.sleep(min(0.1, max(0.0, timeout - waited)))


# Writing -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Secret:
    value: str
    fingerprint: str
    applied_hash: str


def _param(f: Field, value: Any) -> Any:
    return canonical_json(value) if f.type == JSON and value is not None else value


def _secret_name(item: Item) -> str:
    return item.address.split(".", 1)[1]


def _resolve_secrets(plan: Plan, desired: DesiredState, ring: Callable[[], Keyring]) -> dict[str, _Secret]:
    """Secret values for the plan's secret rows, from the environment now; refuse unset or changed ones."""
    have: dict[str, SecretValue] = {}
    for slug, t in desired.tenants.items():
        for r in t.resources:
            if r.secret is not None:
                have[f"{slug}/{r.values.get('name')}"] = r.secret
    out: dict[str, _Secret] = {}
    for item in plan.items:
        if item.spec != SECRETS.name or item.op is Op.DELETE:
            continue
        name = _secret_name(item)
        sv = have.get(f"{item.tenant}/{name}")
        if sv is None or sv.value is None:
            env = item.secret_env or (sv.env if sv else "?")
            raise MissingSecretError(
                f"environment variable {env} is unset: it holds {name} of tenant {item.tenant}, "
                "which this plan writes; set it and apply again (nothing was written)"
            )
        fp = fingerprint(item.tenant_id, name, sv.value)
        out[item.id] = _Secret(sv.value, fp, values_hash(SECRETS, {"name": name, "fingerprint": fp}))
    by_tenant_id = {tp.slug: tp.id for tp in plan.tenants}
    for key, planned in plan.secrets.items():
        sv = have.get(key)
        if planned is None or sv is None or sv.value is None:
            continue
        slug, name = key.split("/", 1)
        fp = fingerprint(by_tenant_id.get(slug, ""), name, sv.value)
        if planned not in {seal_secret(k, fp) for k in ring().keys}:  # any key: a rotation is no change
            raise StalePlanError(f"the value of {sv.env} ({key}) changed since the plan was made: plan again")
    return out


def _columns(spec: TableSpec) -> list[str]:
    cols = ["id", "slug" if spec is TENANT else "tenant_id"]
    if spec.parent_column:
        cols.append(spec.parent_column)
    cols += [f.name for f in spec.fields if f.insert]
    cols.append("applied_hash")
    if spec is SECRETS:
        cols.append("value_enc")
    return cols


def _insert(
    conn: psycopg.Connection[Any],
    spec: TableSpec,
    items: list[Item],
    secrets: Mapping[str, _Secret],
    ring: Callable[[], Keyring],
) -> None:
    fields = [f for f in spec.fields if f.insert]
    with conn.cursor().copy(f"copy {spec.table} ({', '.join(_columns(spec))}) from stdin") as cp:
        for item in items:
            new = {c.field: c.new for c in item.changes}
            sec = secrets.get(item.id)
            if sec is not None:
                new["fingerprint"] = sec.fingerprint
            row: list[Any] = [item.id, item.tenant if spec is TENANT else item.tenant_id]
            if spec.parent_column:
                row.append(item.parent_id)
            row += [_param(f, new.get(f.name)) for f in fields]
            row.append(sec.applied_hash if sec else item.applied_hash)
            if sec is not None:
                row.append(ring().encrypt(sec.value, table=spec.table, row_id=item.id, field="value"))
            cp.write_row(row)


def _update(
    conn: psycopg.Connection[Any],
    spec: TableSpec,
    items: list[Item],
    secrets: Mapping[str, _Secret],
    ring: Callable[[], Keyring],
) -> None:
    groups: dict[tuple[str, ...], list[Item]] = defaultdict(list)
    for item in items:
        groups[tuple(c.field for c in item.changes)].append(item)
    for names, group in groups.items():
        sets = [spec.by_name[n].assign or f"{n} = %s::{spec.by_name[n].pg}" for n in names]
        if spec is SECRETS:
            sets.append("value_enc = %s")
        sql = f"update {spec.table} set {', '.join(sets)}, applied_hash = %s, updated_at = now() where id = %s::uuid"
        params = []
        for item in group:
            new = {c.field: c.new for c in item.changes}
            sec = secrets.get(item.id)
            if sec is not None:
                new["fingerprint"] = sec.fingerprint
            p = [_param(spec.by_name[n], new.get(n)) for n in names]
            if sec is not None:
                p.append(ring().encrypt(sec.value, table=spec.table, row_id=item.id, field="value"))
            p += [sec.applied_hash if sec else item.applied_hash, item.id]
            params.append(p)
        conn.cursor().executemany(sql, params)


def _write(
    conn: psycopg.Connection[Any],
    plan: Plan,
    secrets: Mapping[str, _Secret],
    ring: Callable[[], Keyring],
) -> None:
    by: dict[tuple[str, Op], list[Item]] = defaultdict(list)
    for item in plan.items:
        by[item.spec, item.op].append(item)
    # Deletes run last: an ON DELETE CASCADE (a policy's number) must never reach a row this plan moves
    # elsewhere. The one unique column that is not a natural key, wa_number, is checked at commit instead.
    conn.execute("set constraints t_numbers_tenant_id_wa_number_key deferred")
    for spec in SPECS:
        if ups := by.get((spec.name, Op.UPDATE)):
            _update(conn, spec, ups, secrets, ring)
        if ins := by.get((spec.name, Op.CREATE)):
            _insert(conn, spec, ins, secrets, ring)
    for spec in reversed(SPECS):
        if dels := by.get((spec.name, Op.DELETE)):
            ids = [i.id for i in dels]
            if spec is TENANT:  # tenants are archived, never deleted: their history stays
                conn.execute(
                    "update t_tenants set archived_at = now(), updated_at = now() where id = any(%s::uuid[])", [ids]
                )
            else:
                conn.execute(f"delete from {spec.table} where id = any(%s::uuid[])", [ids])


def _audit(conn: psycopg.Connection[Any], plan: Plan, apply_id: str, actor: str) -> None:
    plan_hash = plan.plan_hash
    rows = [
        (
            tp.id,
            apply_id,
            plan_hash,
            actor,
            canonical_json(tp.summary.to_dict()),
            canonical_json([i.to_dict() for i in tp.items]),
        )
        for tp in plan.tenants
        if tp.items
    ]
    conn.cursor().executemany(
        "insert into t_applies (tenant_id, apply_id, plan_hash, actor, summary, changes)"
        " values (%s, %s, %s, %s, %s::jsonb, %s::jsonb)",
        rows,
    )


def default_enqueue(effect: Effect) -> bool:
    from mirage.jobs.queues import enqueue_unique

    return enqueue_unique(
        effect.queue,
        effect.func,
        job_id=effect.job_id,
        args=effect.args,
        kwargs=dict(effect.kwargs),
        description=effect.reason or None,
    )


def apply_plan(
    plan: Plan,
    conn: psycopg.Connection[Any],
    desired: DesiredState,
    *,
    allow_delete: bool = False,
    actor: str | None = None,
    lock_timeout: float = 60.0,
    ring: Keyring | None = None,
    on_wait: Callable[[Holder | None], None] | None = None,
    enqueue: Callable[[Effect], bool] | None = default_enqueue,
) -> ApplyResult:
    """Apply `plan` (computed from `desired`, re-loaded now) in one transaction; returns what was done.

    Refuses, writing nothing: deletions the policy forbids (PolicyError, exit 3); a plan whose YAML,
    secrets or rows changed since it was made (StalePlanError); an unset secret it needs.
    """
    who = actor or current_actor()
    summary = plan.summary
    if blocked := plan.blocked(allow_delete):
        raise PolicyError(
            f"{len(blocked)} deletion(s) need --allow-delete (or `prune: true` in the tenant): "
            + ", ".join(f"{i.tenant}/{i.address}" for i in blocked[:10])
            + (" ..." if len(blocked) > 10 else "")
        )
    if desired_fingerprint(desired) != plan.desired_fingerprint:
        raise StalePlanError("the YAML changed since the plan was made: plan again")
    keys: list[Keyring] = [ring] if ring else []

    def get_ring() -> Keyring:
        if not keys:
            keys.append(keyring())
        return keys[0]

    secrets = _resolve_secrets(plan, desired, get_ring)
    if secrets:
        get_ring()  # fail before the transaction when no key is configured

    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    conn.execute("select set_config('application_name', %s, false)", [application_name(who)])
    conn.commit()
    apply_id = str(uuid.uuid4())
    try:
        with conn.transaction():
            take_lock(conn, lock_timeout, on_wait)
            actual = read_for(conn, desired)
            if actual.fingerprint() != plan.actual_fingerprint:
                raise StalePlanError(
                    "the database changed since the plan was made (another apply, or a manual edit): plan again"
                )
            if plan.empty:
                return ApplyResult(None, plan.plan_hash, who, summary)
            todo = effects(plan, actual)
            _write(conn, plan, secrets, get_ring)
            if any(i.spec == "members" and i.op is not Op.DELETE for i in plan.items):
                # New members who already signed up (with a confirmed e-mail) get their tenant claim now,
                # not at the next scheduled link; a no-op on plain Postgres, which has no auth.users.
                conn.execute("select mirage_private.link_auth_users()")
            _audit(conn, plan, apply_id, who)
    except (psycopg.DataError, psycopg.IntegrityError) as refused:  # rolled back: a clear error, no traceback
        raise RefusedByDatabaseError(f"the database refused this plan, nothing was written: {refused}") from refused
    log.info("applied", extra={"apply_id": apply_id, "plan_hash": plan.plan_hash, "actor": who, **summary.to_dict()})
    done: list[Effect] = []
    errors: list[tuple[Effect, str]] = []
    send = enqueue or (lambda e: False)
    for e in todo if enqueue else ():
        try:
            if send(e):
                done.append(e)
        except Exception as exc:  # committed already: report, never undo
            errors.append((e, f"{type(exc).__name__}: {exc}"))
            log.error("could not enqueue a job after apply", extra={"job_id": e.job_id, "func": e.func})
    return ApplyResult(apply_id, plan.plan_hash, who, summary, todo, tuple(done), tuple(errors))
