"""Fleet counts read at scrape time for `/metrics`: the shared state every process writes, read as service_role.

Each query groups by the tenant's slug and a small closed set of values (statuses, directions, a normalised reason),
so the label sets stay bounded: no numbers, contacts or free text reach a label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from mirage.db.sessions import service_session
from mirage.errors import ServiceError

# The reason a claim was refused: the runtime stores it in meta.refused_reason or, for cancelled rows, in `error`.
# Only its leading identifier is kept (`quota_hour: 20/20 this hour` -> `quota_hour`), lower-cased, 40 chars at most.
_RAW_REASON = "coalesce(nullif(m.meta->>'refused_reason', ''), m.error, '')"
_REASON = f"coalesce(nullif(left(lower(substring({_RAW_REASON} from '^[A-Za-z0-9_]+')), 40), ''), 'unspecified')"

QUERIES: dict[str, str] = {
    "numbers": """select t.slug as tenant, n.status::text as state, count(*) as n
                    from t_numbers n join t_tenants t on t.id = n.tenant_id
                   where n.active group by 1, 2""",
    "messages": """select t.slug as tenant, m.direction::text as direction, m.status::text as status, count(*) as n
                     from t_messages m join t_tenants t on t.id = m.tenant_id group by 1, 2, 3""",
    "rounds": """select t.slug as tenant, r.status::text as outcome, count(*) as n
                   from t_rounds r join t_tenants t on t.id = r.tenant_id group by 1, 2""",
    "refused": f"""select t.slug as tenant, {_REASON} as reason, count(*) as n
                     from t_messages m join t_tenants t on t.id = m.tenant_id
                    where m.direction = 'out' and m.status = 'cancelled' group by 1, 2""",
    "events": """select t.slug as tenant, e.status as status, count(*) as n
                   from t_webhook_events e join t_tenants t on t.id = e.tenant_id group by 1, 2""",
}


@dataclass(frozen=True)
class FleetCounts:
    """kind -> rows of (labels..., count); the kinds are QUERIES' keys."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def fleet_counts(conn: psycopg.Connection[Any]) -> FleetCounts:
    """One read-only transaction as service_role (row level security would hide other tenants' rows)."""
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        with service_session(conn) as c:
            for kind, sql in QUERIES.items():
                out[kind] = list(c.execute(sql).fetchall())
    except psycopg.Error as e:
        raise ServiceError("postgres", f"fleet counts: {str(e).strip().splitlines()[0]}") from e
    return FleetCounts(out)
