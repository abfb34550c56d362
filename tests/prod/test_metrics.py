"""`GET /metrics` after a demo run: every documented series is exposed with its documented labels and the values
match the rows in Postgres and the webhook traffic; without the token (or from outside the loopback) it is refused.

Real: Postgres and Redis of the test session, the demo's webhook service and Evolution simulator, the Starlette app
through httpx's ASGI transport (its client address is set per case).
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis as redis_lib
from prometheus_client.parser import text_string_to_metric_families

from mirage.crypto import generate_key
from mirage.demo import DemoOptions, run_demo
from mirage.settings import Settings, get_settings
from mirage.web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-scrape-token"
DOC_ROW = re.compile(r"^\| `(mirage_[a-z_]+)` \| (counter|gauge|histogram) \| ([^|]*) \|", re.M)


def documented() -> dict[str, tuple[str, set[str]]]:
    """series name (as exposed, counters without `_total`) -> (type, labels) from docs/metrics.md."""
    out = {}
    for name, kind, labels in DOC_ROW.findall((ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")):
        out[name.removesuffix("_total") if kind == "counter" else name] = (kind, set(re.findall(r"`(\w+)`", labels)))
    return out


def _get(settings: Settings, client: tuple[str, int] = ("127.0.0.1", 50000), **headers: str) -> httpx.Response:
    """GET /metrics from `client`'s address (the app's lifespan is not run: /metrics needs none of it)."""

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(settings), client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://mirage") as http:
            return await http.get("/metrics", headers=headers)

    return asyncio.run(run())


def _settings(**env: str) -> Settings:
    """The test session's settings (its DATABASE_URL, REDIS_URL) plus `env`."""
    return Settings.from_env({**os.environ, **env})


@pytest.fixture(scope="module")
def demo_db(database_url: str, redis_url: str) -> dict[str, Any]:
    """One demo run (its simulated day lives in a scratch database), plus messages, rounds and refused claims the
    runtime would have written here."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MIRAGE_SECRET_KEYS", generate_key())
    mp.setenv("MIRAGE_DOTENV", "")
    get_settings.cache_clear()
    redis_lib.Redis.from_url(redis_url).flushdb()
    try:
        report = run_demo(DemoOptions(tenants_dir=ROOT / "tenants.d", port=0, sim_port=0, timeout_s=60), lambda s: None)
        with psycopg.connect(database_url, autocommit=True) as conn:
            (tenant,) = conn.execute("select id from t_tenants where slug = 'padaria-do-ze'").fetchone() or ()
            for status in ("done", "done", "aborted", "active"):
                conn.execute("insert into t_rounds (tenant_id, status) values (%s, %s)", (tenant, status))
            for direction, status in (("out", "read"), ("out", "read"), *[("in", "received")] * 3):
                conn.execute(
                    "insert into t_messages (tenant_id, direction, status, body) values (%s, %s, %s, 'bom dia')",
                    (tenant, direction, status),
                )
            for error, meta in (  # the runtime's own wording (mirage/jobs/send.py), and worse
                ("daily_limit reached for number ze-balcao", "{}"),
                ("hourly_burst_limit reached for number juca-forno", "{}"),
                ("hourly_burst_limit reached for number ze-balcao", "{}"),
                ("quiet hours", "{}"),
                ("not this bot's turn", "{}"),
                ("ignored", '{"refused_reason": "quiet hours"}'),  # meta wins over error
                ("Opt-out by +5511999990000: 12 queued", "{}"),  # digits, phone numbers and counts never reach a label
                (None, "{}"),
            ):
                conn.execute(
                    "insert into t_messages (tenant_id, direction, status, error, meta, body)"
                    " values (%s, 'out', 'cancelled', %s, %s::jsonb, 'olá')",
                    (tenant, error, meta),
                )
            (stored,) = conn.execute("select count(*) from t_webhook_events").fetchone() or (0,)
        yield {"report": report, "secret_keys": get_settings().secret_keys, "webhook_events": stored}
    finally:
        mp.undo()
        get_settings.cache_clear()
        from tests.conftest import truncate_all

        truncate_all(database_url)


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families: dict[str, Any], name: str, sample: str | None = None, **labels: str) -> float:
    family = families[name]
    return sum(
        s.value
        for s in family.samples
        if (sample is None or s.name == sample) and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_expose_every_documented_series_with_its_labels_after_a_demo(demo_db: dict[str, Any]) -> None:
    response = _get(_settings(MIRAGE_METRICS_TOKEN=TOKEN), authorization=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = _families(response.text)
    docs = documented()
    mirage_families = {n: f for n, f in families.items() if n.startswith("mirage_")}
    assert set(mirage_families) == set(docs)
    for name, family in mirage_families.items():
        kind, labels = docs[name]
        assert family.type == kind, name
        assert family.samples, f"{name} has no samples after the demo"
        for s in family.samples:
            assert set(s.labels) - {"le"} == labels, (name, s.labels)
            for value in s.labels.values():
                assert not re.search(r"\d{8,}|@", value), f"{name} leaks an identifier in a label: {value}"

    report = demo_db["report"]
    assert _value(families, "mirage_numbers", state="open") == report.numbers_open == 14
    assert _value(families, "mirage_numbers", tenant="padaria-do-ze", state="open") == 2
    assert _value(families, "mirage_messages", direction="out", status="read") == 2
    assert _value(families, "mirage_messages", direction="in", status="received") == 3
    assert _value(families, "mirage_rounds", tenant="padaria-do-ze", outcome="done") == 2
    assert _value(families, "mirage_rounds", outcome="aborted") == 1
    refused = {s.labels["reason"]: s.value for s in families["mirage_claims_refused"].samples}
    assert refused == {
        "daily_limit_reached": 1,
        "hourly_burst_limit_reached": 2,
        "quiet_hours": 2,
        "not_this_bot_s_turn": 1,
        "opt_out_by": 1,
        "unspecified": 1,
    }
    quota = {s.labels["reason"]: s.value for s in families["mirage_quota_refusals"].samples}
    assert quota == {"daily_limit_reached": 1, "hourly_burst_limit_reached": 2}
    assert _value(families, "mirage_jobs", queue="instances", state="finished") >= 14
    assert {s.labels["queue"] for s in families["mirage_jobs"].samples} == {"instances", "events", "rounds", "messages"}
    events = _value(families, "mirage_webhook_events")
    assert events == demo_db["webhook_events"] > 0  # the demo's connection updates, as stored
    accepted = _value(families, "mirage_webhook_requests", "mirage_webhook_requests_total", outcome="accepted")
    assert accepted >= events  # every stored event came through an accepted request (retries are accepted too)
    assert _value(families, "mirage_webhook_duration_seconds", "mirage_webhook_duration_seconds_count") >= accepted
    assert (
        _value(families, "mirage_source_up", source="postgres")
        == _value(families, "mirage_source_up", source="redis")
        == 1
    )


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({"authorization": f"Basic {TOKEN}"}, 401),
        ({"authorization": TOKEN}, 401),
        ({"authorization": f"bearer {TOKEN}"}, 200),
    ],
    ids=["no-header", "wrong-token", "basic-scheme", "no-scheme", "right-token"],
)
def test_metrics_need_the_bearer_token_when_one_is_set(
    database_url: str, redis: redis_lib.Redis, headers: dict[str, str], status: int
) -> None:
    response = _get(_settings(MIRAGE_METRICS_TOKEN=TOKEN), **headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "mirage_" not in response.text and TOKEN not in response.text


@pytest.mark.parametrize(
    ("client", "headers", "status"),
    [
        (("127.0.0.1", 50000), {}, 200),
        (("::1", 50000), {}, 200),
        (("10.0.0.7", 50000), {}, 403),
        (("203.0.113.9", 50000), {}, 403),
        (("127.0.0.1", 50000), {"x-forwarded-for": "203.0.113.9"}, 403),  # proxied through nginx on this host
        (("127.0.0.1", 50000), {"x-real-ip": "203.0.113.9"}, 403),
    ],
    ids=["loopback", "loopback-v6", "private-lan", "internet", "proxied-xff", "proxied-real-ip"],
)
def test_metrics_without_a_token_answer_only_direct_loopback_requests(
    database_url: str, redis: redis_lib.Redis, client: tuple[str, int], headers: dict[str, str], status: int
) -> None:
    response = _get(_settings(), client=client, **headers)
    assert response.status_code == status
    if status == 403:
        assert response.json()["reason"] == "metrics_token_required"
    else:
        assert "mirage_source_up" in response.text


def test_a_database_that_cannot_be_read_reports_source_down_not_an_error(redis: redis_lib.Redis) -> None:
    settings = _settings(MIRAGE_METRICS_TOKEN=TOKEN, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    response = _get(settings, authorization=f"Bearer {TOKEN}")
    families = _families(response.text)
    assert response.status_code == 200
    assert _value(families, "mirage_source_up", source="postgres") == 0
    assert _value(families, "mirage_source_up", source="redis") == 1
    assert "mirage_numbers" not in families and "mirage_jobs" in families


@pytest.mark.slow
def test_serve_with_two_processes_sums_the_webhook_series_whichever_process_answers_the_scrape(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "MIRAGE_METRICS_TOKEN": TOKEN,
        "MIRAGE_SECRET_KEYS": generate_key(),
        "MIRAGE_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirage", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        sent = 40
        with httpx.Client(base_url=base) as http:  # new connections spread over both processes
            for _ in range(sent):
                assert http.post(
                    "/api/webhooks/evolution", content=b"{}", headers={"connection": "close"}
                ).status_code in (
                    400,
                    401,
                )
        seen = set()
        for _ in range(6):
            text = httpx.get(base + "/metrics", headers={"authorization": f"Bearer {TOKEN}"}).text
            families = _families(text)
            total = _value(families, "mirage_webhook_requests", "mirage_webhook_requests_total")
            seen.add(total)
            count = _value(families, "mirage_webhook_duration_seconds", "mirage_webhook_duration_seconds_count")
            assert count == total
        assert seen == {sent}  # every scrape, from either process, counts all 40
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
