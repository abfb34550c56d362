"""`mirage demo`: run the main job end to end on this machine (what `make demo` calls)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mirage.cli.base import cli
from mirage.demo import DemoOptions, run_demo
from mirage.i18n import t
from mirage.logs import configure_logging
from mirage.resources import example_tenants_dir
from mirage.settings import get_settings, state_env_path


@cli.command()
@click.option(
    "--tenants",
    "tenants_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of tenant YAML to apply [default: MIRAGE_TENANTS_DIR or tenants.d; when that folder does not "
    "exist, the example tenants installed with Mirage].",
)
@click.option(
    "--time-factor",
    type=click.FloatRange(0.001, 10.0),
    default=0.05,
    show_default=True,
    help="Speed of the simulated phones and people (0.05: 20x faster than real life).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(1, 600),
    default=60,
    show_default=True,
    help="Seconds to wait for each asynchronous step (webhooks) before failing.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port of the webhook service [default: MIRAGE_PORT or 8080; 0: any free port].",
)
@click.option(
    "--sim-port",
    type=click.IntRange(0, 65535),
    default=8090,
    show_default=True,
    help="Port of the Evolution simulator (0: any free port; a new port each run moves the instances).",
)
@click.option(
    "--keep-running",
    is_flag=True,
    help="Afterwards, run the runtime live on this machine with time running 1/--time-factor faster (rounds to "
    "watch on the metrics page; a sign-in link is printed), with the webhook service and the Evolution simulator "
    "up, until Ctrl-C.",
)
def demo(
    tenants_dir: Path | None, time_factor: float, timeout_s: float, port: int | None, sim_port: int, keep_running: bool
) -> None:
    """Run the main job on this machine: embedded Postgres and Redis, migrations, validate, lint, plan,
    apply, Evolution instances provisioned by RQ jobs against the Evolution simulator, QR codes scanned
    (webhooks report them open), then one day of the real runtime in virtual time (`mirage simulate --days 1`):
    a short transcript of the rounds it ran and the compliance summary.

    Safe to run again: apply then reports `No changes.` and the instances are re-created in the fresh
    simulator. `mirage down` stops the embedded servers afterwards.
    """
    settings = get_settings()
    # The demo narrates; unless a level was asked for, logs show warnings and errors only.
    level = settings.log_level if "MIRAGE_LOG_LEVEL" in os.environ else "WARNING"
    configure_logging(level, settings.log_format)
    click.echo(click.style(t("demo.title"), bold=True))
    click.echo(t("demo.intro"))
    root = tenants_dir or settings.tenants_dir
    if tenants_dir is None and not root.is_dir():  # e.g. a pip-installed Mirage run from an empty folder
        bundled = example_tenants_dir()
        click.echo(t("demo.bundled_tenants", missing=root, path=bundled))
        root = bundled
    options = DemoOptions(
        log_level=level,
        tenants_dir=root,
        time_factor=time_factor,
        timeout_s=timeout_s,
        keep_running=keep_running,
        port=settings.port if port is None else port,
        sim_port=sim_port,
        settings_file=state_env_path(settings.state_dir),
    )
    run_demo(options, click.echo)
