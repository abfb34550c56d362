"""Metrics views: per-day and per-number figures in the tenant's timezone, refreshed concurrently, tenant-filtered."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.db.factories import TenantGraph
from tests.db.helpers import act_as, attempt, member

Conn = psycopg.Connection[Any]
ZONE = "America/Sao_Paulo"  # the tenants' default timezone (UTC-3): 23:50 local is 02:50 UTC next day


def _local(conn: Conn, days: int, clock: str) -> dt.datetime:
    """`clock` o'clock on the local day `days` from today, in the tenants' timezone, as an aware timestamp."""
    row = conn.execute(
        "select ((now() at time zone %s)::date + %s + %s::time) at time zone %s as at", (ZONE, days, clock, ZONE)
    ).fetchone()
    assert row is not None
    return row["at"]  # type: ignore[no-any-return]


def _message(conn: Conn, g: TenantGraph, direction: str, status: str, at: dt.datetime, number: object = None) -> None:
    conn.execute(
        "insert into t_messages (tenant_id, from_number_id, to_number_id, contact_id, direction, status, wa_ts, "
        "created_at) values (%(t)s, %(from)s, %(to)s, %(c)s, %(d)s, %(s)s, %(at)s, %(at)s)",
        {
            "t": g.tenant_id,
            "from": (number or g.rows["t_numbers"]) if direction == "out" else None,
            "to": (number or g.rows["t_numbers"]) if direction == "in" else None,
            "c": g.rows["t_contacts"],
            "d": direction,
            "s": status,
            "at": at,
        },
    )


@pytest.fixture
def traffic(conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph]) -> tuple[TenantGraph, TenantGraph, uuid.UUID]:
    """Tenant A's number talks to its contact over ten days; B sends one message; A has a silent second number."""
    a, b = two_tenants
    conn.execute("delete from t_messages where tenant_id in (%s, %s)", (a.tenant_id, b.tenant_id))
    _message(conn, a, "in", "received", _local(conn, -1, "23:50"))
    _message(conn, a, "out", "sent", _local(conn, 0, "00:10"))  # replies after 20 minutes, across midnight
    _message(conn, a, "in", "received", _local(conn, 0, "00:20"))
    _message(conn, a, "out", "delivered", _local(conn, 0, "00:21"))  # replies after 60 s
    _message(conn, a, "out", "queued", _local(conn, 0, "00:22"))  # not sent
    _message(conn, a, "out", "failed", _local(conn, -3, "10:00"))
    _message(conn, a, "out", "read", _local(conn, -10, "10:00"))  # outside the 7 days
    _message(conn, b, "out", "sent", _local(conn, 0, "00:30"))
    silent = conn.execute(
        "insert into t_numbers (tenant_id, key, label, wa_number) values (%s, 'n2', 'Silent', '+5511999990002') "
        "returning id",
        (a.tenant_id,),
    ).fetchone()
    assert silent is not None
    conn.execute("select * from public.refresh_metrics()")
    return a, b, silent["id"]


def test_messages_per_local_day_per_number(conn: Conn, traffic: tuple[TenantGraph, TenantGraph, uuid.UUID]) -> None:
    a, _, _ = traffic
    rows = conn.execute(
        "select day - (now() at time zone %s)::date as days, sent, received, delivered, read, failed "
        "from mv_stats_messages where tenant_id = %s and number_id = %s order by day",
        (ZONE, a.tenant_id, a.rows["t_numbers"]),
    ).fetchall()
    assert [tuple(r.values()) for r in rows] == [
        (-10, 1, 0, 1, 1, 0),
        (-3, 0, 0, 0, 0, 1),
        (-1, 0, 1, 0, 0, 0),
        (0, 2, 1, 1, 0, 0),
    ]


def test_number_stats_today_seven_days_and_reply_latency(
    conn: Conn, traffic: tuple[TenantGraph, TenantGraph, uuid.UUID]
) -> None:
    a, _, silent = traffic
    rows = conn.execute(
        "select number_id, sent_today, received_today, sent_7d, received_7d, replies_7d, reply_latency_avg_s, "
        "reply_latency_p50_s from mv_number_stats where tenant_id = %s",
        (a.tenant_id,),
    ).fetchall()
    assert {r["number_id"]: tuple(r.values())[1:] for r in rows} == {
        a.rows["t_numbers"]: (2, 1, 2, 2, 2, Decimal("630.0"), Decimal("630.0")),
        silent: (0, 0, 0, 0, 0, None, None),
    }


def test_tenant_reads_its_own_metrics_through_the_functions(
    conn: Conn, traffic: tuple[TenantGraph, TenantGraph, uuid.UUID]
) -> None:
    a, b, silent = traffic
    act_as(conn, "authenticated", member(a, role="viewer", aal="aal1"))
    per_day = conn.execute("select number_id from public.stats_messages()").fetchall()
    assert {r["number_id"] for r in per_day} == {a.rows["t_numbers"]}
    per_number = conn.execute("select number_id from public.number_stats()").fetchall()
    assert {r["number_id"] for r in per_number} == {a.rows["t_numbers"], silent}
    recent = conn.execute("select count(*) as n from public.stats_messages((now() - interval '2 days')::date)")
    assert recent.fetchone() == {"n": 2}
    act_as(conn, "authenticated", member(b, role="viewer", aal="aal1"))
    assert {r["number_id"] for r in conn.execute("select number_id from public.number_stats()")} == {
        b.rows["t_numbers"]
    }


@pytest.mark.parametrize("claims", [None, {"role": "authenticated", "app.tenant_id": "not-a-uuid"}])
def test_metrics_functions_return_nothing_without_a_valid_tenant_claim(
    conn: Conn, traffic: tuple[TenantGraph, TenantGraph, uuid.UUID], claims: dict[str, str] | None
) -> None:
    act_as(conn, "authenticated", claims)
    assert conn.execute("select * from public.stats_messages()").fetchall() == []
    assert conn.execute("select * from public.number_stats()").fetchall() == []


@pytest.mark.parametrize("role", ["anon", "authenticated"])
@pytest.mark.parametrize("view", ["mv_stats_messages", "mv_number_stats", "mv_page_facts"])
def test_api_roles_cannot_read_materialized_views_directly(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], role: str, view: str
) -> None:
    a, _ = two_tenants
    act_as(conn, role, member(a))
    assert attempt(conn, f"select * from {view}") == "42501"


@pytest.mark.parametrize("call", ["select * from public.stats_messages()", "select * from public.number_stats()"])
def test_anon_cannot_call_the_metrics_functions(conn: Conn, call: str) -> None:
    act_as(conn, "anon", None)
    assert attempt(conn, call) == "42501"


@pytest.mark.parametrize(("role", "outcome"), [("authenticated", "42501"), ("anon", "42501"), ("service_role", 3)])
def test_only_the_service_refreshes_metrics(conn: Conn, role: str, outcome: int | str) -> None:
    act_as(conn, role, {"role": role})
    assert attempt(conn, "select * from public.refresh_metrics()") == outcome
