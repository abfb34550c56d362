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

# The reason a claim was refused: the runtime writes it to the cancelled row's `error` ("quiet hours", "daily_limit
# reached for number ze-balcao", "not this bot's turn"); meta.refused_reason wins when set. The label keeps the words
# before the first ':', ' for ' or digit, lower-cased, non-alphanumerics as '_', 40 characters at most, so a number's
# key, a phone number or a count never becomes a label value ("daily_limit_reached", "not_this_bot_s_turn").
_RAW_REASON = "coalesce(nullif(m.meta->>'refused_reason', ''), m.error, '')"
_WORDS = f"regexp_replace({_RAW_REASON}, '(:| for |[0-9+]).*$', '')"
_SLUG = f"trim(both '_' from regexp_replace(lower({_WORDS}), '[^a-z0-9]+', '_', 'g'))"
_REASON = f"coalesce(nullif(left({_SLUG}, 40), ''), 'unspecified')"
QUOTA_REASONS = ("hourly_burst_limit_reached", "daily_limit_reached")

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
