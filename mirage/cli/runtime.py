"""`mirage serve` (the webhook service, uvicorn) and `mirage worker` (RQ workers over Mirage's queues)."""

from __future__ import annotations

import os
import shutil
import tempfile

import click

from mirage.cli.base import cli
from mirage.errors import MirageError
from mirage.i18n import t
from mirage.jobs.queues import ALL_QUEUES
from mirage.settings import get_settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client in each server process (mirage.web.prometheus)

_SHORT_QUEUES = [name.removeprefix("mirage-") for name in ALL_QUEUES]
# `mirage worker`'s jobs in flight per process (ADR 0059): a job mostly waits on Postgres, Redis and Evolution.
DEFAULT_THREADS = 4


@cli.command()
@click.option("--host", help="Address to bind [env MIRAGE_HOST, default 127.0.0.1; 0.0.0.0 for every interface].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on [env MIRAGE_PORT, default 8080].")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes; each has its own database pool and auth cache (the service is stateless).",
)
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve Evolution webhooks (POST /api/webhooks/evolution), /healthz, /readyz and /metrics with uvicorn.

    Put it behind a TLS-terminating reverse proxy in production; the proxy's X-Forwarded-* headers are
    trusted from 127.0.0.1 only.
    """
    import uvicorn

    from mirage.web.app import create_app

    s = get_settings()
    host, port = host or s.host, port or s.port
    click.echo(t("web.serving", url=f"http://{host}:{port}", workers=workers), err=True)
    options = {"host": host, "port": port, "log_config": None, "access_log": False, "server_header": False}
    if workers == 1:
        uvicorn.run(create_app(s), **options)  # type: ignore[arg-type]
        return
    # each process builds its own app from the environment the CLI options were copied into; their webhook
    # metrics go to one folder that every process's /metrics sums (prometheus_client's multiprocess mode)
    own_folder = not os.environ.get(MULTIPROC_ENV)
    if own_folder:
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="mirage-metrics-")
    try:
        uvicorn.run("mirage.web.app:app_from_env", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    finally:
        if own_folder:
            shutil.rmtree(os.environ.pop(MULTIPROC_ENV), ignore_errors=True)


@cli.command()
@click.option(
    "--queue",
    "-q",
    "queues",
    multiple=True,
    type=click.Choice(_SHORT_QUEUES + list(ALL_QUEUES)),
    help=f"Queue to work on; repeat for several, earlier ones first [default: all: {', '.join(_SHORT_QUEUES)}].",
)
@click.option("--burst", is_flag=True, help="Exit once the queues are empty instead of waiting for new jobs.")
@click.option(
    "--fork/--simple",
    default=False,
    show_default=True,
    help="Run each job in a forked child (isolation, several times slower, one job at a time) instead of in the "
    "worker process (the default, reusing its connections); job timeouts hold either way.",
)
@click.option(
    "--threads",
    "-t",
    type=click.IntRange(1, 64),
    help=f"Jobs in flight at once in this process, one per thread, each with its own Postgres connection and Redis "
    f"client (jobs mostly wait on Postgres, Redis and Evolution) [default: {DEFAULT_THREADS}; 1 with --fork].",
)
@click.option(
    "--scheduler/--no-scheduler",
    default=True,
    show_default=True,
    help="Also move delayed jobs and retries onto their queues when they are due.",
)
def worker(queues: tuple[str, ...], burst: bool, fork: bool, threads: int | None, scheduler: bool) -> None:
    """Run RQ workers over Mirage's queues (instances, events, rounds, messages) on REDIS_URL.

    Every job logs with the correlation id of the request or job that enqueued it. Run as many workers
    as you like, on as many hosts as you like: jobs have deterministic ids and are taken once. SIGTERM
    (or Ctrl-C) lets the jobs in hand finish; a second one a second later stops at once.
    """
    from mirage.jobs.worker import queue_names, run_worker

    if fork and threads is not None and threads > 1:
        raise click.UsageError("--fork runs one job at a time: leave --threads out (or use --simple)")
    try:
        names = queue_names(queues)
    except ValueError as e:
        raise MirageError(str(e)) from e
    n = 1 if fork else threads or DEFAULT_THREADS
    click.echo(t("ingest.worker_start", queues=", ".join(names), threads=n), err=True)
    ran = run_worker(names, burst=burst, simple=not fork, scheduler=scheduler, threads=n)
    if burst:
        click.echo(t("ingest.worker_burst_done" if ran else "ingest.worker_idle"), err=True)


@cli.command()
@click.option("--list", "list_only", is_flag=True, help="Print the periodic jobs and their intervals, then exit.")
def cron(list_only: bool) -> None:
    """Run the scheduler of Mirage's periodic jobs (rq 3 CronScheduler); run exactly one per deployment.

    It only enqueues: `mirage worker` processes run the jobs. Today: re-normalising webhook events left
    `stored` while Redis was down, and refreshing the metrics views (on Supabase, pg_cron can do the
    latter instead: docs/database.md).
    """
    from mirage.jobs.cron import SCHEDULE, build_scheduler

    for p in SCHEDULE:
        click.echo(f"{p.func.__module__}.{p.func.__name__:<20} every {p.interval_s:>4}s on {p.queue}  ({p.why})")
    if list_only:
        return
    build_scheduler().start()  # type: ignore[no-untyped-call]  # rq leaves it unannotated
