"""`mirage simulate`: a week of the real runtime in virtual time, with a compliance report (docs/simulate.md)."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from mirage.cli.base import cli
from mirage.errors import MirageError
from mirage.i18n import t
from mirage.logs import configure_logging
from mirage.settings import get_settings

FORMATS = ("text", "json", "markdown")


@cli.command()
@click.argument("tenants_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--days", type=click.IntRange(1, 31), default=7, show_default=True, help="Virtual days to simulate.")
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First simulated day, tenant-local [default: the next Monday].",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same transcript, byte for byte.")
@click.option("--tenant", "tenants", multiple=True, help="Simulate only this tenant (repeatable).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True, help="Report format.")
@click.option(
    "--transcript",
    "transcript_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every message (time, from, to, conversation, step, kind, topic, text) as JSON lines to FILE.",
)
@click.option(
    "--reply-probability",
    type=click.FloatRange(0, 1),
    default=0.85,
    show_default=True,
    help="Chance a simulated person answers a message.",
)
@click.option(
    "--optout-probability",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="Chance a person's answer is an opt-out (SAIR, PARAR, STOP, não quero).",
)
@click.option(
    "--optout-phrase",
    "optout_phrases",
    multiple=True,
    metavar="TEXT",
    help="People also opt out saying TEXT (repeatable): their opt-out answers include it and the checks count it. "
    "Shows whether your policies' optout_keywords cover how your people say stop.",
)
@click.option(
    "--script",
    "scripts",
    multiple=True,
    metavar="NUMBER=TEXT",
    help="The person at NUMBER answers TEXT (repeatable, in order; then at random), e.g. "
    "--script '+5511987001234=Quem fala?' --script '+5511987001234=SAIR'.",
)
@click.option(
    "--server",
    metavar="URL",
    default=None,
    help="Postgres server for the scratch database [default: the embedded Postgres of MIRAGE_STATE_DIR]. "
    "DATABASE_URL is never used, so a simulation cannot create databases on production by accident.",
)
@click.option(
    "--tick",
    "tick_s",
    type=click.IntRange(10, 3600),
    default=60,
    show_default=True,
    help="Seconds between the runtime's ticks while a window is open (as `mirage cron`).",
)
def simulate(
    tenants_dir: Path | None,
    days: int,
    start: datetime | None,
    seed: int,
    tenants: tuple[str, ...],
    fmt: str,
    transcript_file: Path | None,
    reply_probability: float,
    optout_probability: float,
    optout_phrases: tuple[str, ...],
    scripts: tuple[str, ...],
    server: str | None,
    tick_s: int,
) -> None:
    """Run the real runtime (ticks, rounds, sends, quotas, webhooks) for DAYS in virtual time against the
    Evolution simulator, on a scratch database built from TENANTS_DIR with the same apply, and report what it
    did: messages, rounds and new contacts per tenant, number and day; delays against the configuration; and
    the compliance checks. Exit 1 when any check finds a violation (the offending messages are listed).

    Nothing sleeps: a week takes minutes. The scratch database and a private Redis are removed afterwards.
    """
    from mirage.simulation.report import as_json, as_markdown, as_text
    from mirage.simulation.session import SimulationOptions, report_of, simulation

    settings = get_settings()
    configure_logging(settings.log_level if "MIRAGE_LOG_LEVEL" in os.environ else "WARNING", settings.log_format)
    first = start.date() if start else _next_monday(date.today())
    options = SimulationOptions(
        tenants_dir=tenants_dir or settings.tenants_dir,
        days=days,
        start=first,
        seed=seed,
        tick=timedelta(seconds=tick_s),
        human=_people(reply_probability, optout_probability, optout_phrases, scripts),
        scope=tenants or None,
        server=server,
    )
    try:
        with simulation(options, lambda line: click.echo(line, err=True)) as run:
            report = report_of(run)
    except MirageError as e:
        raise click.ClickException(str(e)) from e
    if transcript_file is not None:
        transcript_file.write_text(report.transcript_text, encoding="utf-8")
    if fmt == "json":
        click.echo(json.dumps(as_json(report), ensure_ascii=False, indent=2))
    elif fmt == "markdown":
        click.echo(as_markdown(report), nl=False)
    else:
        click.echo(as_text(report), nl=False)
    if report.violations:
        click.echo(t("simulate.verdict_fail", n=report.violations), err=True)
        raise SystemExit(1)


def _people(reply: float, optout: float, phrases: tuple[str, ...], scripts: tuple[str, ...]) -> Any:
    """The simulated people: probabilities, extra opt-out phrases, scripted answers (`NUMBER=TEXT`)."""
    from mirage.integrations.evolution_sim.config import HumanConfig
    from mirage.integrations.evolution_sim.state import digits_of

    by_number: dict[str, list[str]] = {}
    for i, item in enumerate(scripts, 1):
        number, sep, text = item.partition("=")
        digits = digits_of(number)
        if not sep or not text.strip() or len(digits) < 8:
            raise click.BadParameter(
                f"--script #{i} {item!r}: expected NUMBER=TEXT, a phone number with its country code, "
                "then '=' and what the person answers",
                param_hint="--script",
            )
        by_number.setdefault(digits, []).append(text)
    human = HumanConfig(reply_probability=reply, optout_probability=optout, scripts=by_number)
    extra = tuple(p for p in (p.strip() for p in phrases) if p)
    human.optout_replies += extra
    human.optout_keywords += extra
    return human


def _next_monday(today: date) -> date:
    return today + timedelta(days=(7 - today.weekday()) % 7 or 7)
