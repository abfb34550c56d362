"""Which runtime jobs a plan implies (pure): provision new numbers, deprovision removed ones, reschedule.

Job ids are deterministic (derived from row ids and the desired state's hashes), so enqueueing the
effects of the same change twice enqueues once, and an unchanged re-apply (an empty plan) has none.

Decisions (docs/gitops.md#runtime-effects):
  * a new active number, or a number switched back to active, is provisioned;
  * a number removed from the YAML has its live session deprovisioned (the session row stays, its
    number_id set null by the FK, so its history keeps pointing somewhere);
  * a number set `active: false` keeps its session: the schedulers stop using it, and switching it
    back on needs no new QR scan;
  * a number whose wa_number changed is another WhatsApp account: old session out, provision again,
    as ONE job (reprovision) so several workers can never run the two steps out of order;
  * a tenant whose `evolution.base_url` changed moves to that server: each active number is provisioned
    there (provision retires the session on the old server first; the phones scan a new QR);
  * a conversation whose row or any child row (schedule, participants, pairings, topics, settings)
    changed or was deleted is rescheduled (its not-yet-started rounds are aborted and re-planned).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mirage.reconcile.plan import Item, Op, Plan
from mirage.reconcile.resources import SPEC_BY_NAME, digest
from mirage.reconcile.rows import ActualState

INSTANCES = "mirage-instances"  # mirage.jobs.queues.INSTANCES (kept literal: this module stays pure)
ROUNDS = "mirage-rounds"  # mirage.jobs.queues.ROUNDS

PROVISION = "mirage.jobs.instances.provision_number"
DEPROVISION = "mirage.jobs.instances.deprovision_session"
REPROVISION = "mirage.jobs.instances.reprovision_number"  # deprovision then provision, in one job
RESCHEDULE = "mirage.jobs.conversations.reschedule_conversation"


@dataclass(frozen=True)
class Effect:
    """One RQ job to enqueue after commit, by dotted path, under a deterministic id."""

    queue: str
    func: str
    job_id: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""


def _changed(item: Item, name: str) -> tuple[Any, Any] | None:
    for c in item.changes:
        if c.field == name:
            return c.old, c.new
    return None


def _short(h: str | None) -> str:
    return (h or "none").removeprefix("sha256:")[:12]


def _number_effects(item: Item, sessions: Mapping[str, str | None], was_active: bool) -> list[Effect]:
    provision = Effect(
        INSTANCES,
        PROVISION,
        f"provision:{item.id}:{_short(item.applied_hash)}",
        (item.id,),
        reason=f"{item.tenant}/{item.address}",
    )
    session = sessions.get(item.id)
    deprovision = (
        [Effect(INSTANCES, DEPROVISION, f"deprovision:{session}", (session,), reason=f"{item.tenant}/{item.address}")]
        if session
        else []
    )
    if item.op is Op.CREATE:
        active = _changed(item, "active")
        return [provision] if active is None or active[1] else []
    if item.op is Op.DELETE:
        return deprovision
    active = _changed(item, "active")
    now_active = bool(active[1]) if active else was_active
    if _changed(item, "wa_number") is not None:
        if session and now_active:
            return [
                Effect(
                    INSTANCES,
                    REPROVISION,
                    f"reprovision:{item.id}:{_short(item.applied_hash)}",
                    (item.id, session),
                    reason=f"{item.tenant}/{item.address}",
                )
            ]
        return deprovision if session else ([provision] if now_active else [])
    if now_active and not was_active:
        return [provision]
    return []


def _moved_server_effects(plan: Plan, actual: ActualState, already: set[Any]) -> list[Effect]:
    """A tenant whose Evolution URL changed moves to that server: provision each of its active numbers there."""
    out = []
    for item in plan.items:
        if item.spec != "settings" or item.op is not Op.UPDATE or _changed(item, "evolution_base_url") is None:
            continue
        stamp = _short(item.applied_hash)
        for row in actual.rows.get("numbers", ()):
            if row.tenant_id == item.tenant_id and row.values.get("active") and row.id not in already:
                out.append(
                    Effect(
                        INSTANCES,
                        PROVISION,
                        f"provision:{row.id}:moved:{stamp}",
                        (row.id,),
                        reason=f"{item.tenant}/evolution.base_url",
                    )
                )
    return out


def effects(plan: Plan, actual: ActualState) -> tuple[Effect, ...]:
    """The jobs `plan` implies, given the state it is applied to (read inside apply's transaction)."""
    sessions = {
        r.id: (str(r.runtime["session_id"]) if r.runtime.get("session_id") else None)
        for r in actual.rows.get("numbers", ())
    }
    actual_active = {r.id: bool(r.values.get("active")) for r in actual.rows.get("numbers", ())}
    out: list[Effect] = []
    touched: dict[str, list[Item]] = defaultdict(list)
    created: set[str] = set()
    deleted: dict[str, Item] = {}
    for item in plan.items:
        spec = SPEC_BY_NAME[item.spec]
        if item.spec == "numbers":
            out.extend(_number_effects(item, sessions, actual_active.get(item.id, False)))
        elif item.spec == "conversations":
            if item.op is Op.CREATE:
                created.add(item.id)
            elif item.op is Op.DELETE:
                deleted[item.id] = item
            else:
                touched[item.id].append(item)
        elif spec.parent == "conversations" and item.parent_id:
            touched[item.parent_id].append(item)
    out.extend(_moved_server_effects(plan, actual, {e.args[0] for e in out if e.func in (PROVISION, REPROVISION)}))
    for conv_id in sorted(touched):
        if conv_id in created or conv_id in deleted:
            continue  # a new conversation has nothing planned yet; a deleted one is handled below
        items = touched[conv_id]
        stamp = digest(sorted([i.address, i.op.value, i.applied_hash or ""] for i in items))
        first = items[0]
        out.append(
            Effect(
                ROUNDS,
                RESCHEDULE,
                f"reschedule:{conv_id}:{_short(stamp)}",
                (conv_id,),
                reason=f"{first.tenant}/{first.address}",
            )
        )
    for conv_id, item in sorted(deleted.items()):
        out.append(
            Effect(
                ROUNDS,
                RESCHEDULE,
                f"reschedule:{conv_id}:deleted",
                (conv_id,),
                {"tenant_id": item.tenant_id},
                reason=f"{item.tenant}/{item.address}",
            )
        )
    return tuple(out)
