"""Every page renders against real Postgres, and its figures equal plain SQL counts over t_messages / t_rounds."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.pages.helpers import Fleet, _message, expected, expected_rounds, figures, refresh, seed_fleet

PERIODS = ["today", "7d", "30d", "custom"]


def _range(fleet: Fleet, period: str) -> tuple[Any, Any, dict[str, str]]:
    today = fleet.today
    if period == "today":
        return today, today, {"period": "today"}
    if period == "7d":
        return today - timedelta(days=6), today, {"period": "7d"}
    if period == "30d":
        return today - timedelta(days=29), today, {"period": "30d"}
    since, until = today - timedelta(days=8), today - timedelta(days=2)
    return since, until, {"period": "custom", "from": since.isoformat(), "to": until.isoformat()}


@pytest.fixture
def fleet(db: Any) -> Fleet:
    f = seed_fleet(db, "padaria", days=12)
    db.commit()
    refresh(db)
    return f


def _check(page: dict[str, str], want: dict[str, Any]) -> None:
    assert int(page["sent_period"]) == want["sent"]
    assert int(page["received_period"]) == want["received"]
    assert int(page["delivered"]) == want["delivered"]
    assert int(page["read"]) == want["read"]
    assert int(page["replies"]) == want["replies"]
    got_p50 = None if page["latency_p50"] == "None" else float(page["latency_p50"])
    got_p95 = None if page["latency_p95"] == "None" else float(page["latency_p95"])
    assert (got_p50, got_p95) == (want["p50"], want["p95"])


@pytest.mark.parametrize("period", PERIODS)
def test_overview_figures_equal_sql_counts(db: Any, fleet: Fleet, as_viewer: Any, period: str) -> None:
    since, until, query = _range(fleet, period)
    page = as_viewer(fleet).get("/", params=query)
    assert page.status_code == 200
    got = figures(page.text)
    _check(got, expected(db, fleet, since, until))
    today = expected(db, fleet, fleet.today, fleet.today)
    assert (int(got["sent_today"]), int(got["received_today"])) == (today["sent"], today["received"])


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("key", ["a", "b", "c"])
def test_number_page_figures_equal_sql_counts(db: Any, fleet: Fleet, as_viewer: Any, period: str, key: str) -> None:
    since, until, query = _range(fleet, period)
    number = fleet.numbers[key]
    page = as_viewer(fleet).get(f"/numbers/{number}", params=query)
    assert page.status_code == 200
    got = figures(page.text)
    _check(got, expected(db, fleet, since, until, number=number))
    rounds = expected_rounds(db, fleet, since, until) if key in "ab" else {"started": 0, "finished": 0, "aborted": 0}
    assert (int(got["rounds_started"]), int(got["rounds_finished"]), int(got["rounds_aborted"])) == (
        rounds["started"],
        rounds["finished"],
        rounds["aborted"],
    )


@pytest.mark.parametrize("period", PERIODS)
def test_conversation_page_figures_and_rounds_equal_sql_counts(
    db: Any, fleet: Fleet, as_viewer: Any, period: str
) -> None:
    since, until, query = _range(fleet, period)
    conversation = fleet.conversations["main"]
    page = as_viewer(fleet).get(f"/conversations/{conversation}", params=query)
    assert page.status_code == 200
    got = figures(page.text)
    _check(got, expected(db, fleet, since, until, conversation=conversation))
    rounds = expected_rounds(db, fleet, since, until)
    assert int(got["rounds_started"]) == rounds["started"]
    assert int(got["rounds_finished"]) == rounds["finished"]
    assert int(got["rounds_aborted"]) == rounds["aborted"]
    per_round = rounds["exchanges"] / rounds["finished"] if rounds["finished"] else None
    assert (None if got["per_round"] == "None" else float(got["per_round"])) == per_round


def test_topic_ranking_counts_messages_per_topic_most_first(db: Any, fleet: Fleet, as_viewer: Any) -> None:
    since, until, query = _range(fleet, "30d")
    page = as_viewer(fleet).get(f"/conversations/{fleet.conversations['main']}", params=query)
    table = page.text.split('class="topics"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<th scope="row">([^<]*)</th><td class="num">([\d,]+)</td>', table)
    want = expected(db, fleet, since, until, conversation=fleet.conversations["main"])["topics"]
    assert {name: int(n.replace(",", "")) for name, n in rows} == want
    counts = [int(n.replace(",", "")) for _, n in rows]
    assert counts == sorted(counts, reverse=True)


def test_heatmap_table_adds_up_to_the_periods_messages(db: Any, fleet: Fleet, as_viewer: Any) -> None:
    since, until, query = _range(fleet, "7d")
    number = fleet.numbers["a"]
    page = as_viewer(fleet).get(f"/numbers/{number}", params=query)
    table = page.text.split('class="heat-table"', 1)[1].split("</table>", 1)[0]
    cells = [int(v) for v in re.findall(r'<td class="num">(\d+)</td>', table)]
    assert len(cells) == 7 * 24
    want = expected(db, fleet, since, until, number=number)
    assert sum(cells) == want["sent"] + want["received"]


def test_daily_table_has_one_row_per_day_and_matches_sql(db: Any, fleet: Fleet, as_viewer: Any) -> None:
    page = as_viewer(fleet).get("/", params={"period": "7d"})
    table = page.text.split("<summary>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r'<th scope="row">(\d{4}-\d\d-\d\d)</th><td class="num">([\d,]+)</td><td class="num">([\d,]+)</td>', table
    )
    assert [r[0] for r in rows] == [(fleet.today - timedelta(days=6 - i)).isoformat() for i in range(7)]
    for day, sent, received in rows:
        d = datetime.fromisoformat(day).date()
        want = expected(db, fleet, d, d)
        assert (int(sent.replace(",", "")), int(received.replace(",", ""))) == (want["sent"], want["received"])


@pytest.mark.parametrize("page_cache_s", [0.0])  # cache off; with it on, tests/pages/test_page_cache.py
def test_todays_counters_are_live_while_older_figures_wait_for_the_refresh(
    db: Any, fleet: Fleet, as_viewer: Any
) -> None:
    client = as_viewer(fleet)
    before = figures(client.get("/", params={"period": "7d"}).text)
    with db.transaction():
        row = db.execute("select id from t_rounds where tenant_id = %s limit 1", (fleet.tenant_id,)).fetchone()
        _message(
            db,
            fleet,
            row["id"],
            "a",
            "b",
            "out",
            "sent",
            datetime.now(UTC) - timedelta(minutes=1),
            "tempo",
            "oi",
            "WALIVE",
            99999,
        )
    after = figures(client.get("/", params={"period": "7d"}).text)
    assert int(after["sent_today"]) == int(before["sent_today"]) + 1
    assert int(after["sent_period"]) == int(before["sent_period"]) + 1


def test_page_says_how_old_its_figures_are(db: Any, fleet: Fleet, as_viewer: Any) -> None:
    db.execute("update mirage_meta.metrics_refreshes set refreshed_at = now() - interval '7 minutes'")
    db.commit()
    text = html.unescape(as_viewer(fleet).get("/").text)
    assert re.search(r"Figures refreshed 7 min( \d+ s)? ago; today's counters are live\.", text)


def test_paused_and_waiting_numbers_show_their_state_and_reason(db: Any, fleet: Fleet, as_viewer: Any) -> None:
    text = as_viewer(fleet).get("/").text
    assert f'data-live-state="{fleet.numbers["c"]}">waiting for QR<' in text
    assert f'data-live-state="{fleet.numbers["d"]}">paused<' in text
    assert "warm-up paused by the operator" in text


def test_quota_headroom_is_the_daily_cap_minus_todays_sends(db: Any, fleet: Fleet, as_viewer: Any) -> None:
    used = db.execute(
        "select count(*) as n from t_messages where from_number_id = %s and direction = 'out'"
        " and status in ('sending', 'sent', 'delivered', 'read', 'unknown')"
        " and (coalesce(wa_ts, sent_at, created_at) at time zone %s)::date = %s",
        (fleet.numbers["a"], fleet.zone, fleet.today),
    ).fetchone()["n"]
    db.commit()
    text = as_viewer(fleet).get("/").text
    assert f'data-live-key="{fleet.numbers["a"]}.headroom">{150 - used}<' in text


def test_live_json_gives_states_and_todays_counters(db: Any, fleet: Fleet, as_viewer: Any) -> None:
    live = as_viewer(fleet).get("/live.json").json()
    today = expected(db, fleet, fleet.today, fleet.today)
    assert live["ok"] and live["sent_today"] == f"{today['sent']:,}"
    assert live["numbers"][str(fleet.numbers["d"])]["state"] == "paused"
    assert live["numbers"][str(fleet.numbers["c"])]["state"] == "qr"


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("pt-BR", ["Visão geral", "Enviadas hoje", "Taxa de entrega"]),
        ("en", ["Overview", "Sent today", "Delivery rate"]),
    ],
)
def test_page_speaks_the_tenants_language(db: Any, as_viewer: Any, locale: str, words: list[str]) -> None:
    fleet = seed_fleet(db, "lang", locale=locale, days=2)
    db.commit()
    text = as_viewer(fleet).get("/").text
    assert f'<html lang="{locale}"' in text
    for w in words:
        assert w in text


def test_viewer_may_switch_language_and_theme_and_it_sticks(db: Any, fleet: Fleet, as_viewer: Any) -> None:
    client = as_viewer(fleet)
    text = client.get("/", params={"lang": "pt-BR", "theme": "light"}).text
    assert 'lang="pt-BR" data-theme="light"' in text
    assert 'lang="pt-BR" data-theme="light"' in client.get("/messages").text


def test_pt_br_numbers_use_its_separators(db: Any, as_viewer: Any) -> None:
    fleet = seed_fleet(db, "milhar", locale="pt-BR", days=3)
    db.commit()
    refresh(db)
    text = as_viewer(fleet).get("/").text
    rate = re.search(r'data-figure="delivered" data-value="\d+">([^<]*)<', text)
    assert rate and re.fullmatch(r"\d+,\d %", rate.group(1))


@pytest.mark.parametrize(
    ("value", "locale", "digits", "text"),
    [
        (1234567, "en", 0, "1,234,567"),
        (1234567, "pt-BR", 0, "1.234.567"),
        (1234.5, "pt-BR", 1, "1.234,5"),
        (None, "en", 0, "–"),
    ],
)
def test_numbers_are_written_in_the_viewers_locale(value: Any, locale: str, digits: int, text: str) -> None:
    from mirage.web.pages.fmt import number

    assert number(value, locale, digits) == text
