"""Prometheus `/metrics` (ADR 0035): webhook outcomes and latency measured in this process, and fleet state read
at scrape time from Postgres and Redis, which every process (service, workers, cron) writes.

Every series and label is documented in docs/metrics.md. Labels carry only the tenant's slug and small closed sets
(statuses, queues, normalised reasons), never a phone number, contact or message text.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mirage import __version__
from mirage.errors import MirageError
from mirage.integrations.evolution.models import WEBHOOK_PATH
from mirage.settings import Settings
from mirage.web.webhooks import answer

log = logging.getLogger(__name__)

PATH = "/metrics"
# `mirage serve --workers N` points every process at one folder; the scrape then sums them (prometheus_client's
# multiprocess mode). One process: the counters below live in memory.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `*_created` series: they double the output and no query here uses them

OUTCOMES = {200: "accepted", 202: "accepted", 400: "invalid", 401: "unauthorized", 404: "not_found"}
OUTCOMES |= {405: "method_not_allowed", 408: "too_slow", 413: "too_large", 503: "unavailable"}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

WEBHOOKS = Counter(
    "mirage_webhook_requests",
    "Webhook requests answered by this service, by outcome.",
    ["outcome"],
    registry=None,
)
WEBHOOK_SECONDS = Histogram(
    "mirage_webhook_duration_seconds",
    "Time from a webhook request's arrival to the end of its answer, by outcome.",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)


def outcome(status: int) -> str:
    """The outcome label of a webhook answer's status code (a closed set: docs/metrics.md)."""
    return OUTCOMES.get(status) or ("error" if status >= 500 else "other")


class WebhookMetrics:
    """ASGI middleware: counts and times the requests to the webhook path; every other request passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(WEBHOOK_PATH):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the answer started counts as an error

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            label = outcome(status)
            WEBHOOKS.labels(label).inc()
            WEBHOOK_SECONDS.labels(label).observe(time.perf_counter() - started)


class FleetCollector(Collector):
    """Gauges from the shared state, read once per scrape; a source that fails reports `mirage_source_up 0`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        from mirage.backends import redis_client
        from mirage.db.connect import connect, database_url
        from mirage.db.stats import fleet_counts
        from mirage.jobs.stats import job_counts

        up = GaugeMetricFamily(
            "mirage_source_up", "1 when the scrape could read the source, else 0.", labels=["source"]
        )
        info = GaugeMetricFamily("mirage_build_info", "Always 1; the version of this service.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        try:
            with connect(database_url(self.settings)) as conn:
                fleet = fleet_counts(conn)
            up.add_metric(["postgres"], 1)
            yield from _fleet_metrics(fleet.rows)
        except MirageError as e:
            log.warning("metrics: %s", e)
            up.add_metric(["postgres"], 0)
        try:
            client = redis_client(self.settings)
            try:
                jobs = job_counts(client)
            finally:
                client.close()
            up.add_metric(["redis"], 1)
            family = GaugeMetricFamily("mirage_jobs", "RQ jobs by queue and state.", labels=["queue", "state"])
            for queue, state, n in jobs:
                family.add_metric([queue, state], n)
            yield family
        except MirageError as e:
            log.warning("metrics: %s", e)
            up.add_metric(["redis"], 0)
        yield up


# kind of FleetCounts -> (metric name, help, label columns)
FLEET_SERIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "numbers": ("mirage_numbers", "Active numbers by connection state.", ("tenant", "state")),
    "messages": (
        "mirage_messages",
        "Messages in Postgres by direction and status (out: queued, sending, sent, delivered, read, failed, ...).",
        ("tenant", "direction", "status"),
    ),
    "rounds": ("mirage_rounds", "Rounds by status (planned, active, done, aborted).", ("tenant", "outcome")),
    "refused": (
        "mirage_claims_refused",
        "Outgoing messages whose send was refused at claim time (status cancelled), by reason.",
        ("tenant", "reason"),
    ),
    "events": ("mirage_webhook_events", "Stored webhook events by processing status.", ("tenant", "status")),
}


def _fleet_metrics(rows: dict[str, list[dict[str, object]]]) -> Iterator[Metric]:
    from mirage.db.stats import QUOTA_REASONS

    for kind, (name, help_text, labels) in FLEET_SERIES.items():
        family = GaugeMetricFamily(name, help_text, labels=list(labels))
        for row in rows.get(kind, []):
            family.add_metric([str(row[label]) for label in labels], float(str(row["n"])))
        yield family
    quota = GaugeMetricFamily(
        "mirage_quota_refusals",
        "Claims refused because a number's hourly or daily quota was full.",
        labels=["tenant", "reason"],
    )
    for row in rows.get("refused", []):
        if str(row["reason"]) in QUOTA_REASONS or str(row["reason"]).startswith("quota"):
            quota.add_metric([str(row["tenant"]), str(row["reason"])], float(str(row["n"])))
    yield quota


def render(settings: Settings) -> bytes:
    """The exposition text: this service's webhook series (every process's, in multiprocess mode) and the fleet's."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(WEBHOOKS)
        registry.register(WEBHOOK_SECONDS)
    registry.register(FleetCollector(settings))
    return generate_latest(registry)


_FORWARDED = ("x-forwarded-for", "x-real-ip", "forwarded")


def refusal(request: Request, settings: Settings) -> Response | None:
    """None when the request may read the metrics: the bearer token when MIRAGE_METRICS_TOKEN is set, else a
    direct (not proxied) request from this host's loopback."""
    token = settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), token.get_secret_value().encode()
        ):
            return None
        response = answer(401, reason="unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="mirage-metrics"'
        return response
    host = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if local and not any(h in request.headers for h in _FORWARDED):
        return None
    return answer(403, reason="metrics_token_required")


async def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.mirage.settings
    refused = refusal(request, settings)
    if refused is not None:
        return refused
    body = await run_in_threadpool(render, settings)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def routes() -> list[Route]:
    return [Route(PATH, metrics, methods=["GET"])]


def middleware() -> list[Middleware]:
    return [Middleware(WebhookMetrics)]
