"""A tenant's day is one rule in SQL and Python: its time zone, or UTC when the zone is unknown (ADR 0021).

Daily quotas (Python, mirage.engine.quotas) and daily metrics (SQL, the metrics views) must count the same
day for the same message, also for a zone one side does not know (a row edited by hand, tzdata skew).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from mirage.engine.calendar import local_date, tenant_zone
from mirage.engine.quotas import buckets
from mirage.web.pages.periods import zone_name
from tests.db.factories import TenantGraph

Conn = psycopg.Connection[Any]

ZONES = [
    pytest.param("America/Sao_Paulo", "America/Sao_Paulo", id="sao-paulo"),
    pytest.param("Asia/Kathmandu", "Asia/Kathmandu", id="kathmandu"),
    pytest.param("Pacific/Kiritimati", "Pacific/Kiritimati", id="kiritimati"),
    pytest.param("UTC", "UTC", id="utc"),
    pytest.param("Mars/Olympus", "UTC", id="unknown"),
    pytest.param("America/Sao_Paolo", "UTC", id="misspelt"),
    pytest.param("", "UTC", id="empty"),
]
HOURS = [0, 2, 11, 13, 22, 23]  # UTC hours of the message: either side of the local midnights above


def _instant(hour: int) -> dt.datetime:
    """Two days ago at `hour`:30 UTC (inside the views' windows)."""
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
    return dt.datetime.combine(day, dt.time(hour, 30), tzinfo=dt.UTC)


@pytest.mark.parametrize(("timezone", "effective"), ZONES)
def test_python_counts_a_tenant_day_in_its_zone_or_utc_when_unknown(timezone: str, effective: str) -> None:
    assert tenant_zone(timezone) == ZoneInfo(effective)
    for hour in HOURS:
        at = _instant(hour)
        assert local_date(at, timezone) == at.astimezone(ZoneInfo(effective)).date()


@pytest.mark.parametrize(("timezone", "effective"), ZONES)
def test_sql_tenant_zones_applies_the_same_rule(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], timezone: str, effective: str
) -> None:
    a, _ = two_tenants
    conn.execute("update t_tenants set timezone = %s where id = %s", (timezone, a.tenant_id))
    row = conn.execute("select zone from public.tenant_zones where tenant_id = %s", (a.tenant_id,)).fetchone()
    assert row == {"zone": effective}


@pytest.mark.parametrize(("timezone", "effective"), ZONES)
def test_daily_quota_and_daily_metrics_count_the_same_day(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], timezone: str, effective: str
) -> None:
    a, _ = two_tenants
    number = a.rows["t_numbers"]
    conn.execute("update t_tenants set timezone = %s where id = %s", (timezone, a.tenant_id))
    conn.execute("delete from t_messages where tenant_id = %s", (a.tenant_id,))
    for hour in HOURS:
        conn.execute(
            "insert into t_messages (tenant_id, from_number_id, direction, status, wa_ts, created_at) "
            "values (%s, %s, 'out', 'sent', %s, %s)",
            (a.tenant_id, number, _instant(hour), _instant(hour)),
        )
    conn.execute("refresh materialized view public.mv_stats_messages")
    metrics = {
        r["day"]: r["sent"]
        for r in conn.execute(
            "select day, sent from mv_stats_messages where tenant_id = %s and number_id = %s", (a.tenant_id, number)
        )
    }
    quotas: dict[dt.date, int] = {}
    for hour in HOURS:
        _, day = buckets(
            str(number), _instant(hour), timezone, hourly_limit=10, tenant_daily_limit=100, warmup_started_on=None
        )
        counted = dt.datetime.strptime(day.key.rsplit(":", 1)[1], "%Y%m%d").date()
        quotas[counted] = quotas.get(counted, 0) + 1
    assert metrics == quotas


def test_every_metrics_view_takes_the_tenant_zone_from_the_one_shared_view(conn: Conn) -> None:
    views = {
        r["matviewname"]: r["definition"]
        for r in conn.execute("select matviewname, definition from pg_matviews where schemaname = 'public'")
    }
    local_days = {name for name, sql in views.items() if "time zone" in sql.lower()}
    assert {"mv_stats_messages", "mv_number_stats", "mv_page_facts"} <= local_days
    for name in local_days:
        assert "tenant_zones" in views[name] and "pg_timezone_names" not in views[name], name


@pytest.mark.parametrize(("timezone", "effective"), ZONES)
def test_the_metrics_page_shows_the_same_zone(timezone: str, effective: str) -> None:
    assert zone_name(timezone) == effective
