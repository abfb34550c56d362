"""Seeding the metrics page's tests: tenants, members, numbers, conversations, rounds and messages inserted with
SQL shaped like what the runtime and ingest write (t_rounds, t_messages with meta.topic, round_id,
conversation_id, statuses, WhatsApp timestamps), and the page's own expected figures counted with plain SQL."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from mirage.crypto import keyring

Conn = psycopg.Connection[Any]
SENT = ("sent", "delivered", "read")
# out statuses cycled through the seeded sends (failed and queued ones are not "sent")
STATUSES = ("read", "delivered", "sent", "read", "failed", "delivered", "queued", "read")


def noon_zone(now: datetime | None = None) -> str:
    """An Etc/GMT zone where it is around noon now, so "today" has hours behind it whatever the test's clock."""
    now = now or datetime.now(UTC)
    offset = 12 - now.hour  # local = utc + offset
    offset = max(-12, min(14, offset))
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


@dataclass
class Fleet:
    tenant_id: uuid.UUID
    slug: str
    zone: str
    today: date
    numbers: dict[str, uuid.UUID] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    conversations: dict[str, uuid.UUID] = field(default_factory=dict)
    users: dict[str, uuid.UUID] = field(default_factory=dict)  # role -> t_users.id
    auth_ids: dict[str, uuid.UUID] = field(default_factory=dict)  # role -> auth user id (Supabase)
    emails: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, uuid.UUID] = field(default_factory=dict)
    messages: int = 0


def _insert(conn: Conn, table: str, values: dict[str, Any]) -> uuid.UUID:
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    row = conn.execute(f"insert into {table} ({cols}) values ({marks}) returning id", list(values.values())).fetchone()
    assert row is not None
    return row["id"]


def seed_fleet(
    conn: Conn,
    slug: str,
    *,
    zone: str | None = None,
    locale: str = "en",
    days: int = 10,
    rounds_per_day: int = 3,
    hostile: dict[str, str] | None = None,
    now: datetime | None = None,
) -> Fleet:
    """A tenant with numbers a, b (open), c (waiting for a QR), d (paused), two conversations, members of each
    role, and `days` days of rounds between a and b (today's before now). `hostile` replaces names, topics and
    bodies with the given strings (XSS tests)."""
    hostile = hostile or {}
    now = now or datetime.now(UTC)
    zone = zone or noon_zone(now)
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    tid = _insert(
        conn,
        "t_tenants",
        {"slug": slug, "name": hostile.get("tenant", f"Padaria {slug}"), "timezone": zone, "locale": locale},
    )
    fleet = Fleet(tid, slug, zone, today)
    _insert(conn, "t_settings_tenant", {"tenant_id": tid, "daily_limit": 150})
    for role in ("admin", "member", "viewer"):
        email = f"{role}@{slug}.example"
        auth_id = uuid.uuid4()
        fleet.users[role] = _insert(
            conn,
            "t_users",
            {"tenant_id": tid, "email": email, "role": role, "auth_user_id": auth_id if role != "viewer" else None},
        )
        fleet.auth_ids[role] = auth_id
        fleet.emails[role] = email
    specs = {
        "a": ("open", True, None),
        "b": ("open", True, None),
        "c": ("qr", True, None),
        "d": ("open", False, "warm-up paused by the operator"),
    }
    for i, (key, (status, active, reason)) in enumerate(specs.items()):
        label = hostile.get("label", f"Número {key.upper()}") if key == "a" else f"Número {key.upper()}"
        fleet.labels[key] = label
        fleet.numbers[key] = _insert(
            conn,
            "t_numbers",
            {
                "tenant_id": tid,
                "key": key,
                "label": label,
                "wa_number": f"+55119{abs(hash(slug)) % 1000:03d}{i:05d}",
                "status": status,
                "active": active,
                "status_reason": reason,
                "warmup_started_on": today - timedelta(days=40),
            },
        )
    ring = keyring()
    for key in ("a", "b", "c"):
        sid = uuid.uuid4()
        values: dict[str, Any] = {
            "id": sid,
            "tenant_id": tid,
            "number_id": fleet.numbers[key],
            "instance_name": f"{slug}-{key}",
            "base_url": "http://evolution.test",
            "state": "open" if key != "c" else "connecting",
        }
        if key == "c":
            values["last_qr_enc"] = ring.encrypt("2@QRSECRET-" + slug, table="t_sessions", row_id=sid, field="last_qr")
            values["pairing_code_enc"] = ring.encrypt("WZYX1234", table="t_sessions", row_id=sid, field="pairing_code")
            values["last_qr_at"] = now
            values["qr_count"] = 2
        fleet.sessions[key] = _insert(conn, "t_sessions", values)
    conv_name = hostile.get("conversation", "Papo de padaria")
    fleet.conversations["main"] = _insert(
        conn, "t_conversations", {"tenant_id": tid, "key": "main", "name": conv_name, "mode": "pair"}
    )
    fleet.conversations["other"] = _insert(
        conn, "t_conversations", {"tenant_id": tid, "key": "other", "name": "Conversa dois", "mode": "pair"}
    )
    pairing = _insert(
        conn,
        "t_pairings",
        {
            "tenant_id": tid,
            "conversation_id": fleet.conversations["main"],
            "number_a_id": fleet.numbers["a"],
            "number_b_id": fleet.numbers["b"],
        },
    )
    topics = [hostile.get("topic", "futebol"), "tempo", "receitas"]
    body = hostile.get("body")
    seq = 0
    for k in range(days):
        day = today - timedelta(days=k)
        for r in range(rounds_per_day):
            hour = 8 + (3 * r + k) % 4 if k == 0 else 8 + (5 * r + 2 * k) % 13
            start = datetime.combine(day, time(hour, (7 * k + 13 * r) % 50), tz)
            if start > now - timedelta(minutes=30):
                start = now - timedelta(minutes=30 + 10 * r)
            status = ("done", "aborted", "active")[(k + r) % 3]
            topic = topics[(k + r) % 3]
            exchanges = 2 + (k + r) % 2
            round_id = _insert(
                conn,
                "t_rounds",
                {
                    "tenant_id": tid,
                    "conversation_id": fleet.conversations["main"],
                    "pairing_id": pairing,
                    "status": status,
                    "daypart": "morning",
                    "window_date": day,
                    "exchanges_planned": exchanges,
                    "exchanges_done": exchanges if status == "done" else 1,
                    "started_at": start,
                    "finished_at": start + timedelta(minutes=10) if status != "active" else None,
                    "created_at": start,
                },
            )
            at = start
            speakers = [("a", "b"), ("b", "a")]
            for step in range(exchanges):
                sender, receiver = speakers[step % 2]
                seq += 1
                out_status = STATUSES[seq % len(STATUSES)]
                text = body or f"mensagem {seq} sobre {topic}"
                wa = f"WA{seq:06d}{slug.upper()[:4]}"
                _message(conn, fleet, round_id, sender, receiver, "out", out_status, at, topic, text, wa, seq)
                fleet.messages += 1
                if out_status in SENT:
                    # the receiving bot's copy, as ingest stores it
                    _message(
                        conn,
                        fleet,
                        round_id,
                        sender,
                        receiver,
                        "in",
                        "received",
                        at + timedelta(seconds=2),
                        None,
                        text,
                        wa,
                        seq,
                    )
                    fleet.messages += 1
                at += timedelta(seconds=20 + (seq * 17) % 140)  # think + typing time before the reply
    return fleet


def _message(
    conn: Conn,
    fleet: Fleet,
    round_id: uuid.UUID,
    sender: str,
    receiver: str,
    direction: str,
    status: str,
    at: datetime,
    topic: str | None,
    body: str,
    wa: str,
    seq: int,
) -> None:
    meta: dict[str, Any] = {"app_origin": "bot", "script_id": str(round_id)} if direction == "out" else {}
    if topic is not None:
        meta["topic"] = topic
    own = sender if direction == "out" else receiver
    values: dict[str, Any] = {
        "tenant_id": fleet.tenant_id,
        "conversation_id": fleet.conversations["main"],
        "round_id": round_id,
        "session_id": fleet.sessions[own],
        "from_number_id": fleet.numbers[sender],
        "to_number_id": fleet.numbers[receiver],
        "from_jid": f"{sender}@s.whatsapp.net",
        "to_jid": f"{receiver}@s.whatsapp.net",
        "wa_msg_id": wa if direction == "out" else wa + "-in",
        "direction": direction,
        "body": body,
        "meta": json.dumps(meta),
        "status": status,
        "created_at": at,
    }
    if direction == "out":
        values["idempotency_key"] = f"{round_id}:{seq}"
        if status in SENT:
            values["sent_at"] = at
        if status in ("delivered", "read"):
            values["delivered_at"] = at + timedelta(seconds=1)
        if status == "read":
            values["read_at"] = at + timedelta(seconds=5)
    else:
        values["wa_ts"] = at
    _insert(conn, "t_messages", values)


def refresh(conn: Conn) -> None:
    conn.execute("select public.refresh_metrics()")
    conn.commit()


# -- expected figures, counted straight from t_messages ---------------------------------------------------------

_LOCAL_DAY = "(coalesce(m.wa_ts, m.sent_at, m.created_at) at time zone %(zone)s)::date"


def expected(
    conn: Conn,
    fleet: Fleet,
    since: date,
    until: date,
    *,
    number: uuid.UUID | None = None,
    conversation: uuid.UUID | None = None,
) -> dict[str, Any]:
    params = {
        "zone": fleet.zone,
        "since": since,
        "until": until,
        "tid": fleet.tenant_id,
        "n": number,
        "c": conversation,
    }
    scope = (
        f"m.tenant_id = %(tid)s and {_LOCAL_DAY} between %(since)s and %(until)s"
        " and (%(n)s::uuid is null or (m.direction = 'out' and m.from_number_id = %(n)s::uuid)"
        "      or (m.direction = 'in' and m.to_number_id = %(n)s::uuid))"
        " and (%(c)s::uuid is null or m.conversation_id = %(c)s::uuid)"
    )
    row = conn.execute(
        f"""select count(*) filter (where direction = 'out' and status in ('sent', 'delivered', 'read')) as sent,
                   count(*) filter (where direction = 'in') as received,
                   count(*) filter (where direction = 'out' and status in ('delivered', 'read')) as delivered,
                   count(*) filter (where direction = 'out' and status = 'read') as read
              from t_messages m where {scope}""",
        params,
    ).fetchone()
    assert row is not None
    # replies: an outgoing message right after an incoming one in its number's thread with the same peer
    lat = conn.execute(
        f"""with t as (
              select m.*, case m.direction when 'out' then m.from_number_id else m.to_number_id end as own,
                     case m.direction when 'out' then m.to_number_id else m.from_number_id end as peer,
                     coalesce(m.wa_ts, m.sent_at, m.created_at) as at
                from t_messages m
               where m.tenant_id = %(tid)s and (m.direction = 'in' or m.status in ('sent', 'delivered', 'read'))
            ), w as (
              select t.*, lag(direction) over (partition by own, peer order by at, direction) as pd,
                          lag(at) over (partition by own, peer order by at, direction) as pat,
                          lag(round_id) over (partition by own, peer order by at, direction) as pr
                from t
            )
            select count(*) as n,
                   percentile_disc(0.5) within group (order by round(extract(epoch from at - pat))) as p50,
                   percentile_disc(0.95) within group (order by round(extract(epoch from at - pat))) as p95
              from w m
             where direction = 'out' and pd = 'in' and (round_id is null or pr is null or round_id = pr)
               and {scope}""",
        params,
    ).fetchone()
    assert lat is not None
    topics = conn.execute(
        f"""select m.meta ->> 'topic' as topic, count(*) as n from t_messages m
             where {scope} and m.direction = 'out' and m.status in ('sent', 'delivered', 'read')
               and m.meta ? 'topic' group by 1 order by 2 desc, 1""",
        params,
    ).fetchall()
    return {
        "sent": row["sent"],
        "received": row["received"],
        "delivered": row["delivered"],
        "read": row["read"],
        "replies": lat["n"],
        "p50": float(lat["p50"]) if lat["p50"] is not None else None,
        "p95": float(lat["p95"]) if lat["p95"] is not None else None,
        "topics": {r["topic"]: r["n"] for r in topics},
    }


def expected_rounds(conn: Conn, fleet: Fleet, since: date, until: date) -> dict[str, Any]:
    tz = ZoneInfo(fleet.zone)
    start = datetime.combine(since, time(), tz)
    end = datetime.combine(until + timedelta(days=1), time(), tz)
    row = conn.execute(
        """select count(*) filter (where started_at is not null) as started,
                  count(*) filter (where status = 'done') as finished,
                  count(*) filter (where status = 'aborted') as aborted,
                  coalesce(sum(exchanges_done) filter (where status = 'done'), 0) as exchanges
             from t_rounds where tenant_id = %s and coalesce(started_at, created_at) >= %s
              and coalesce(started_at, created_at) < %s""",
        (fleet.tenant_id, start, end),
    ).fetchone()
    assert row is not None
    return dict(row)


_FIGURE = re.compile(r'data-figure="([a-z0-9_]+)" data-value="([^"]*)"')


def figures(html: str) -> dict[str, str]:
    """The data-figure/data-value pairs of a rendered page (raw values, not the formatted text)."""
    return dict(_FIGURE.findall(html))
