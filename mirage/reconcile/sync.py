"""Runtime drift: the numbers, sessions and conversations whose runtime state does not match the applied rows.

Apply enqueues its runtime jobs once, after commit (mirage.reconcile.effects). A crash between the commit
and the enqueue, or a Redis that is down, loses them; so the runtime also converges level-triggered, like a
Kubernetes controller: `read_drift` compares the runtime columns with the applied configuration, and
`RuntimeDrift.effects()` names the job that closes each gap under the same deterministic id apply uses.
`mirage cron` runs that sync every minute, `mirage plan` reports it, `mirage apply` enqueues it even when the
configuration has no changes. Enqueueing the same gap twice enqueues once.

What counts as drift (docs/gitops.md#runtime-drift):
  * an active number with no live session, or whose status is `pending`, `error` or `removed`, or whose live
    session sits on another Evolution server than its tenant's -> provision;
  * a live session whose number was removed from the YAML -> deprovision;
  * a conversation that is inactive but still has planned or active rounds, or is active with planned rounds
    made before its configuration last changed -> reschedule; rounds whose conversation was deleted and that
    are still planned or active -> reschedule (the deleted case).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from mirage.reconcile.effects import DEPROVISION, INSTANCES, PROVISION, RESCHEDULE, ROUNDS, Effect

# The conversation a reschedule of deleted conversations' rounds names: none has this id, so the job takes
# its "deleted" branch for the tenant it is given (mirage.jobs.conversations.abort_rounds).
NO_CONVERSATION = "00000000-0000-0000-0000-000000000000"
WAITING_STATUSES = ("pending", "error", "removed")


@dataclass(frozen=True)
class NumberDrift:
    id: str
    tenant: str
    key: str
    applied_hash: str | None
    reason: str  # no-session | status:<status> | moved
    settings_hash: str | None = None  # the tenant settings' applied_hash: names the job of a move


@dataclass(frozen=True)
class SessionDrift:
    id: str
    tenant: str
    instance_name: str


@dataclass(frozen=True)
class ConversationDrift:
    id: str | None  # None: rounds of deleted conversations
    tenant_id: str
    tenant: str
    key: str | None
    applied_hash: str | None
    rounds: int


@dataclass(frozen=True)
class RuntimeDrift:
    """Where the runtime lags the applied configuration; empty when it has caught up."""

    numbers: tuple[NumberDrift, ...] = ()
    sessions: tuple[SessionDrift, ...] = ()
    conversations: tuple[ConversationDrift, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.numbers or self.sessions or self.conversations)

    def counts(self) -> dict[str, int]:
        return {
            "numbers": len(self.numbers),
            "sessions": len(self.sessions),
            "conversations": len(self.conversations),
        }

    def effects(self) -> tuple[Effect, ...]:
        """The jobs that close each gap, under the ids apply uses for the same change (mirage.reconcile.effects)."""
        out = [
            Effect(
                INSTANCES,
                PROVISION,
                f"provision:{n.id}:moved:{_short(n.settings_hash)}"
                if n.reason == "moved"
                else f"provision:{n.id}:{_short(n.applied_hash)}",
                (n.id,),
                reason=f"{n.tenant}/numbers.{n.key} ({n.reason})",
            )
            for n in self.numbers
        ]
        out += [
            Effect(INSTANCES, DEPROVISION, f"deprovision:{s.id}", (s.id,), reason=f"{s.tenant}/{s.instance_name}")
            for s in self.sessions
        ]
        for c in self.conversations:
            if c.id is None:
                out.append(
                    Effect(
                        ROUNDS,
                        RESCHEDULE,
                        f"reschedule:deleted:{c.tenant_id}",
                        (NO_CONVERSATION,),
                        {"tenant_id": c.tenant_id},
                        reason=f"{c.tenant}/deleted conversations",
                    )
                )
            else:
                out.append(
                    Effect(
                        ROUNDS,
                        RESCHEDULE,
                        f"reschedule:{c.id}:{_short(c.applied_hash)}",
                        (c.id,),
                        reason=f"{c.tenant}/conversations.{c.key}",
                    )
                )
        return tuple(out)


def _short(h: str | None) -> str:
    return (h or "none").removeprefix("sha256:")[:12]


_SCOPE = "t.archived_at is null and (%(all)s or t.slug = any(%(slugs)s))"

_NUMBERS = f"""
select n.id::text, t.slug as tenant, n.key, n.applied_hash, st.applied_hash as settings_hash,
       case when s.id is null then 'no-session'
            when n.status::text = any(%(waiting)s) then 'status:' || n.status::text
            else 'moved' end as reason
from t_numbers n
join t_tenants t on t.id = n.tenant_id
left join t_settings_tenant st on st.tenant_id = n.tenant_id
left join t_sessions s on s.number_id = n.id and s.deprovisioned_at is null
where n.active and {_SCOPE}
  and (s.id is null
       or n.status::text = any(%(waiting)s)
       or rtrim(s.base_url, '/') <> rtrim(coalesce(st.evolution_base_url, %(default_url)s, s.base_url), '/'))
order by t.slug, n.key
"""

_SESSIONS = f"""
select s.id::text, t.slug as tenant, s.instance_name
from t_sessions s join t_tenants t on t.id = s.tenant_id
where s.deprovisioned_at is null and s.number_id is null and {_SCOPE}
order by t.slug, s.instance_name
"""

_CONVERSATIONS = f"""
select c.id::text, c.tenant_id::text, t.slug as tenant, c.key, c.applied_hash, count(*)::int as rounds
from t_rounds r
join t_conversations c on c.id = r.conversation_id
join t_tenants t on t.id = c.tenant_id
where {_SCOPE}
  and ((not c.active and r.status in ('planned', 'active'))
       or (c.active and r.status = 'planned' and r.created_at < c.updated_at))
group by c.id, c.tenant_id, t.slug, c.key, c.applied_hash
union all
select null, r.tenant_id::text, t.slug, null, null, count(*)::int
from t_rounds r join t_tenants t on t.id = r.tenant_id
where {_SCOPE} and r.conversation_id is null and r.target_id is null and r.status in ('planned', 'active')
group by r.tenant_id, t.slug
order by 3, 4
"""


def read_drift(
    conn: psycopg.Connection[Any], slugs: Sequence[str] | None = None, *, default_base_url: str | None = None
) -> RuntimeDrift:
    """The runtime drift of `slugs` (None: every tenant not archived), read in the caller's transaction.

    `default_base_url` is EVOLUTION_BASE_URL, the server of tenants that set no `evolution.base_url`.
    """
    params = {
        "all": slugs is None,
        "slugs": list(slugs or ()),
        "waiting": list(WAITING_STATUSES),
        "default_url": default_base_url,
    }
    cur = conn.cursor(row_factory=dict_row)
    numbers = tuple(NumberDrift(**r) for r in cur.execute(_NUMBERS, params).fetchall())
    sessions = tuple(SessionDrift(**r) for r in cur.execute(_SESSIONS, params).fetchall())
    conversations = tuple(
        ConversationDrift(
            id=r["id"],
            tenant_id=r["tenant_id"],
            tenant=r["tenant"],
            key=r["key"],
            applied_hash=r["applied_hash"],
            rounds=r["rounds"],
        )
        for r in cur.execute(_CONVERSATIONS, params).fetchall()
    )
    return RuntimeDrift(numbers, sessions, conversations)
