"""Tokens per tenant per local day: public.text_usage sums the meta the runtime writes on each text, under
t_messages' row level security, on the tenant's day; `mirage text usage` shows it as a table or JSON."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from mirage.cli import cli
from mirage.engine.calendar import local_date
from tests.db.factories import TenantGraph, make_tenant_graph
from tests.db.helpers import act_as, act_as_owner, member

Conn = psycopg.Connection[Any]


def text(db: Conn, g: TenantGraph, at: datetime, source: str | None, tokens: Any = 0, reasons: bool = False) -> None:
    """One outgoing text of `g` written at `at`, with the meta the runtime writes (none when source is None)."""
    meta: dict[str, Any] = {} if source is None else {"text_source": source, "tokens": tokens}
    if reasons:
        meta["text_reasons"] = ["openai:http_500"]
    db.execute(
        "insert into t_messages (tenant_id, from_number_id, direction, body, meta, status, created_at, updated_at) "
        "values (%s, %s, 'out', 'oi', %s, 'sent', %s, %s)",
        (g.tenant_id, g.rows["t_numbers"], Jsonb(meta), at, at),
    )


def usage(db: Conn, g: TenantGraph) -> dict[date, dict[str, Any]]:
    rows = db.execute(
        "select day, messages, openai_messages, offline_messages, fallbacks, tokens from public.text_usage "
        "where tenant_id = %s",
        (g.tenant_id,),
    ).fetchall()
    return {r.pop("day"): r for r in rows}


def test_tokens_are_summed_per_tenant_local_day_and_only_for_written_texts(db: Conn) -> None:
    a, b = make_tenant_graph(db), make_tenant_graph(db)
    db.execute("update t_tenants set timezone = 'America/Sao_Paulo' where id = %s", (a.tenant_id,))
    db.execute("update t_tenants set timezone = 'UTC' where id = %s", (b.tenant_id,))
    late = datetime(2026, 12, 7, 2, 30, tzinfo=UTC)  # 23:30 on the 6th in São Paulo
    text(db, a, late, "openai", 120)
    text(db, a, late + timedelta(hours=1), "openai", 80)  # 00:30 on the 7th
    text(db, a, late + timedelta(hours=2), "offline", 0, reasons=True)
    text(db, a, late + timedelta(hours=3), "offline", 0)
    text(db, a, late + timedelta(hours=4), None)  # a message without text meta (not written by a round)
    text(db, a, late + timedelta(hours=5), "openai", "12")  # a hand-edited meta with a string: not summed
    text(db, b, late, "openai", 999)
    db.commit()
    assert usage(db, a) == {
        date(2026, 12, 6): {"messages": 1, "openai_messages": 1, "offline_messages": 0, "fallbacks": 0, "tokens": 120},
        date(2026, 12, 7): {"messages": 4, "openai_messages": 2, "offline_messages": 2, "fallbacks": 1, "tokens": 80},
    }
    assert usage(db, b) == {
        date(2026, 12, 7): {"messages": 1, "openai_messages": 1, "offline_messages": 0, "fallbacks": 0, "tokens": 999}
    }


@pytest.mark.parametrize("timezone", ["America/Sao_Paulo", "Asia/Tokyo", "Mars/Olympus_Mons"])
def test_the_day_follows_the_one_tenant_day_rule(db: Conn, timezone: str) -> None:
    g = make_tenant_graph(db)
    db.execute("update t_tenants set timezone = %s where id = %s", (timezone, g.tenant_id))
    instants = [datetime(2026, 12, 7, h, 30, tzinfo=UTC) for h in (0, 2, 14, 22, 23)]
    for at in instants:
        text(db, g, at, "offline")
    db.commit()
    expected: dict[date, int] = {}
    for at in instants:  # Python's rule (mirage.engine.calendar: the zone, or UTC when unknown)
        expected[local_date(at, timezone)] = expected.get(local_date(at, timezone), 0) + 1
    assert {d: r["messages"] for d, r in usage(db, g).items()} == expected
    zone = db.execute("select zone from public.tenant_zones where tenant_id = %s", (g.tenant_id,)).fetchone()
    days = db.execute(
        "select (created_at at time zone %s)::date as day, count(*) as n from t_messages where tenant_id = %s "
        "and meta ? 'text_source' group by 1",
        (zone["zone"] if zone else "UTC", g.tenant_id),
    ).fetchall()
    assert {r["day"]: r["n"] for r in days} == expected  # and SQL's one rule (public.tenant_zones)


def test_a_member_reads_only_their_tenants_usage(db: Conn) -> None:
    a, b = make_tenant_graph(db), make_tenant_graph(db)
    at = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    text(db, a, at, "openai", 10)
    text(db, b, at, "openai", 20)
    db.commit()
    act_as(db, "authenticated", member(a))
    seen = db.execute("select tenant_id, tokens from public.text_usage").fetchall()
    act_as(db, "anon", None)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("select * from public.text_usage")
    db.rollback()
    act_as_owner(db)
    assert seen == [{"tenant_id": a.tenant_id, "tokens": 10}]


def test_mirage_text_usage_prints_each_day_and_the_total_as_a_table_or_json(db: Conn) -> None:
    g = make_tenant_graph(db, slug="padaria")
    db.execute("update t_tenants set timezone = 'America/Sao_Paulo' where id = %s", (g.tenant_id,))
    now = datetime.now(UTC)
    text(db, g, now, "openai", 300)
    text(db, g, now, "offline", 0, reasons=True)
    text(db, g, now - timedelta(days=2), "openai", 50)
    text(db, g, now - timedelta(days=30), "openai", 7000)  # outside --days 3
    db.commit()
    runner = CliRunner()
    table = runner.invoke(cli, ["--lang", "en", "text", "usage", "padaria", "--days", "3"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].startswith("padaria · text of the last 3 day(s)") and lines[1].split()[0] == "day"
    assert len(lines) == 2 + 3 + 1 and lines[-1].split() == ["total", "3", "2", "1", "1", "350"]
    doc = json.loads(runner.invoke(cli, ["text", "usage", "padaria", "--days", "3", "--format", "json"]).output)
    today = local_date(now, "America/Sao_Paulo")
    assert doc["tenant"] == "padaria" and doc["tokens"] == 350
    assert [d["day"] for d in doc["days"]] == [(today - timedelta(days=i)).isoformat() for i in (2, 1, 0)]
    assert [d["tokens"] for d in doc["days"]] == [50, 0, 300]
    assert doc["days"][-1] == {
        "day": today.isoformat(),
        "messages": 2,
        "openai_messages": 1,
        "offline_messages": 1,
        "fallbacks": 1,
        "tokens": 300,
    }


def test_mirage_text_usage_of_an_unknown_tenant_fails_with_the_reason(db: Conn) -> None:
    result = CliRunner().invoke(cli, ["--lang", "en", "text", "usage", "nobody"])
    assert result.exit_code != 0 and "unknown tenant 'nobody'" in result.output
