"""What `mirage status` reports, as plain JSON-ready data: per tenant, its numbers (state, pause, today's sent and
received, quota headroom), its live rounds, the next round each conversation would start, and paused numbers.

Built from the same rows and pure rules the tick uses (the snapshot, the effective views, `next_round_at`), at
the runtime clock's `now`, so what status says is what the tick would do. A section is one key of a tenant's
dict; `SECTIONS` lists them in order, and another feature adds its own with `add_section`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mirage.db import rounds as db_rounds
from mirage.db import status as db_status
from mirage.engine.calendar import local_datetime, tenant_zone
from mirage.engine.quotas import daily_limit
from mirage.engine.rounds import next_round_at
from mirage.jobs.runtime import Conn, build_views, plan_state, since_for_snapshot

Report = dict[str, Any]
# name -> builder(conn, tenants rows, now) -> {tenant id: section value}; run once for all tenants shown
SectionBuilder = Callable[[Conn, list[dict[str, Any]], datetime], dict[str, Any]]
SECTIONS: dict[str, SectionBuilder] = {}


def add_section(name: str, builder: SectionBuilder) -> None:
    """Register a section (say `outreach`) that `status_report(..., sections=[name])` adds to every tenant."""
    SECTIONS[name] = builder


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def spans(tenant: dict[str, Any], now: datetime) -> db_status.Span:
    """The tenant-local day and the clock hour `now` falls in (UTC, half-open): what the quotas count."""
    local = local_datetime(now, str(tenant["timezone"]))
    zone = tenant_zone(str(tenant["timezone"]))
    day_start = datetime.combine(local.date(), datetime.min.time(), tzinfo=zone)
    day_end = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return db_status.Span(
        str(tenant["id"]), day_start.astimezone(UTC), day_end.astimezone(UTC), hour, hour + timedelta(hours=1)
    )


def _number(row: dict[str, Any], tenant: dict[str, Any], today: date) -> dict[str, Any]:
    hourly = int(tenant["hourly_burst_limit"])
    daily = daily_limit(int(tenant["daily_limit"]), row["warmup_started_on"], today)
    hour_used, day_used = int(row["hour_used"]), int(row["day_used"])
    return {
        "key": row["key"],
        "wa_number": row["wa_number"],
        "state": row["status"],
        "state_reason": row["status_reason"],
        "active": bool(row["active"]),
        "paused": row["paused_at"] is not None,
        "paused_reason": row["paused_reason"],
        "paused_at": _iso(row["paused_at"]),
        "send_failures": int(row["send_failures"]),
        "sent_today": int(row["sent_today"]),
        "received_today": int(row["received_today"]),
        "hour_used": hour_used,
        "hour_limit": hourly,
        "day_used": day_used,
        "day_limit": daily,
        "headroom": max(0, min(hourly - hour_used, daily - day_used)),
    }


def _round(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "conversation": row["conversation"],
        "status": row["status"],
        "daypart": row["daypart"],
        "window_date": _iso(row["window_date"]),
        "seq": row["seq"],
        "step": int(row["exchanges_done"]),
        "steps": int(row["steps"] or 0),
        "starter": row["starter"],
        "responder": row["responder"],
        "turn": row["turn"],
        "topic": row["topic"],
        "started_at": _iso(row["started_at"]),
        "deadline_at": _iso(row["deadline_at"]),
    }


def _next_rounds(conn: Conn, tenant_ids: set[str], now: datetime) -> dict[str, list[dict[str, Any]]]:
    """Per tenant: each active conversation's next round (or why it has none) and the ones skipped as broken."""
    tenant = next(iter(tenant_ids)) if len(tenant_ids) == 1 else None
    snapshot = db_rounds.load_snapshot(conn, since_for_snapshot(now), tenant_id=tenant)
    views, skipped = build_views(snapshot)
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in tenant_ids}
    for v in views:
        if v.tenant_id not in tenant_ids:
            continue
        rows = snapshot.conversations[v.id]
        running = any(r["status"] in ("planned", "active") for r in rows.rounds)
        at = next_round_at(v, plan_state(rows, frozenset()), now)
        note = "a round is running" if running else ("" if at is not None else "no window in the next 8 days")
        out[v.tenant_id].append({"conversation": v.key, "next_round_at": _iso(at), "note": note})
    slugs = {str(t.tenant["slug"]): tid for tid, t in snapshot.tenants.items()}
    for slug, key, reason in skipped:
        if slugs.get(slug) in tenant_ids:
            out[slugs[slug]].append({"conversation": key, "next_round_at": None, "note": f"skipped: {reason}"})
    for items in out.values():
        items.sort(key=lambda c: str(c["conversation"]))
    return out


def status_report(conn: Conn, slug: str | None, now: datetime, sections: list[str] | tuple[str, ...] = ()) -> Report:
    """The status of one tenant (by slug) or of every live tenant at `now`; UnknownTenant for a wrong slug."""
    tenants = db_status.tenants(conn, slug)
    ids = [str(t["id"]) for t in tenants]
    all_spans = {str(t["id"]): spans(t, now) for t in tenants}
    numbers = db_status.numbers(conn, list(all_spans.values()))
    rounds = db_status.live_rounds(conn, ids)
    upcoming = _next_rounds(conn, set(ids), now) if ids else {}
    extra = {name: SECTIONS[name](conn, tenants, now) for name in sections}
    out = []
    for t in tenants:
        tid = str(t["id"])
        today = local_datetime(now, str(t["timezone"])).date()
        nums = [_number(n, t, today) for n in numbers if n["tenant_id"] == tid]
        item: dict[str, Any] = {
            "tenant": t["slug"],
            "name": t["name"],
            "timezone": t["timezone"],
            "today": today.isoformat(),
            "numbers": nums,
            "rounds": [_round(r) for r in rounds if r["tenant_id"] == tid],
            "conversations": upcoming.get(tid, []),
            "paused": [
                {"key": n["key"], "reason": n["paused_reason"], "since": n["paused_at"]} for n in nums if n["paused"]
            ],
        }
        for name, per_tenant in extra.items():
            item[name] = per_tenant.get(tid)
        out.append(item)
    return {"now": now.isoformat(), "tenants": out}
