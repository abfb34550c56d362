"""`mirage demo`: the main job, end to end, on one machine: real Postgres and Redis, the Evolution simulator.

Each step runs the same code production runs: the CLI commands (validate, lint, plan, apply), the RQ
instance jobs against an Evolution API (here the simulator, over HTTP), and the webhook service that
authenticates, stores and normalises what Evolution sends. Only the phones are simulated: scanning a QR
code and people writing back.
"""

from __future__ import annotations

import contextlib
import logging
import time as wall
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import click

from mirage.backends import postgres_backend, redis_backend
from mirage.db.connect import connect
from mirage.db.migrate import migrate
from mirage.errors import MirageError
from mirage.i18n import t
from mirage.settings import environment, get_settings, write_state_env

log = logging.getLogger(__name__)

Say = Callable[[str], None]
LIVE_FROM = time(8, 0)  # the live runtime's clock starts at this tenant-local time, inside the morning windows
TRANSCRIPT_LINES = 14  # of the simulated day, shown in the demo's narration


@dataclass
class DemoOptions:
    tenants_dir: Path
    time_factor: float = 0.05  # the simulator's clock: human replies and delivery receipts 20x faster
    timeout_s: float = 60.0
    keep_running: bool = False
    log_level: str = "WARNING"  # passed to every command the demo runs, so its narration stays readable
    port: int = 8080  # the webhook service; stable ports keep the Evolution URL the same across runs
    sim_port: int = 8090  # the Evolution simulator (0: any free port)
    settings_file: Path | None = None  # where to keep the simulator's URL and key for later commands


@dataclass
class DemoReport:
    """What the demo did, for the closing summary (and for tests)."""

    tenants: int = 0
    numbers_open: int = 0
    numbers_total: int = 0
    rounds: int = 0  # of the simulated day, planned and run by the runtime's own jobs
    sent: int = 0
    violations: int = 0
    transcript: list[dict[str, Any]] = field(default_factory=list)
    model_texts: list[str] = field(default_factory=list)  # the preview written through the OpenAI simulator


class DemoError(MirageError):
    """A demo step failed; the message names the step."""


def _step(say: Say, n: int, key: str, **fields: Any) -> None:
    say("")
    say(click.style(f"[{n}/8] {t(f'demo.step.{key}', **fields)}", bold=True))


def _command(say: Say, *args: str) -> None:
    """Narrate the command a user would type for the step the demo runs through the same functions."""
    say(click.style(f"$ mirage {' '.join(args)}", fg="cyan"))


def _wait(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = wall.monotonic() + timeout_s
    while not check():
        if wall.monotonic() > deadline:
            raise DemoError(t("demo.timeout", what=what, seconds=int(timeout_s)))
        wall.sleep(0.1)


def _numbers(started: datetime) -> list[dict[str, Any]]:
    with connect() as conn:
        rows = conn.execute(
            """select n.id, t.slug as tenant, n.key, n.wa_number, n.status::text as status, n.session_id,
                      s.instance_name, (n.connected_at >= %s) as connected_now
                 from t_numbers n join t_tenants t on t.id = n.tenant_id
                 left join t_sessions s on s.id = n.session_id
                where n.active and t.archived_at is null
                order by t.slug, n.key""",
            [started],
        ).fetchall()
    return list(rows)


def run_demo(options: DemoOptions, say: Say) -> DemoReport:
    """Run the demo; raises DemoError (or another MirageError) naming the step that failed."""
    from mirage.integrations.evolution_sim import SimConfig
    from mirage.integrations.evolution_sim.config import HumanConfig
    from mirage.integrations.evolution_sim.runner import run_in_thread, serve_in_thread
    from mirage.integrations.openai_sim import OpenAISimConfig
    from mirage.integrations.openai_sim.runner import run_openai_sim
    from mirage.web.app import create_app

    report = DemoReport()
    started = datetime.now(UTC)
    settings = get_settings()

    _step(say, 1, "services")
    pg, rd = postgres_backend(settings), redis_backend(settings)
    for name, backend in (("Postgres", pg), ("Redis", rd)):
        kind = t("doctor.embedded") if backend.embedded else t("services.external")
        say(f"  {name:<9} {kind}: {backend.masked}")

    _step(say, 2, "migrations")
    with connect() as conn:
        done = migrate(conn, progress=lambda m, s: say(f"  {m.name}  {s * 1000:.0f} ms"))
    if not done:
        say("  " + t("demo.migrations_current"))

    _step(say, 3, "servers")
    web = serve_in_thread(create_app(settings), port=options.port)
    try:
        sim = run_in_thread(
            SimConfig(time_factor=options.time_factor, human=HumanConfig(reply_probability=1.0)),
            port=options.sim_port,
        )
    except MirageError:
        web.stop()
        raise
    # the real openai client talks to the OpenAI-compatible simulator, with a key made for this run
    model = run_openai_sim(OpenAISimConfig(api_key="sk-demo-" + uuid.uuid4().hex, seed=42))
    say(f"  {t('demo.webhooks_at')}: {web.url}/api/webhooks/evolution")
    say(f"  {t('demo.sim_at')}: {sim.url}  (Evolution API {sim.config.version})")
    say(f"  {t('demo.openai_sim_at')}: {model.base_url}")
    world = {"MIRAGE_PUBLIC_URL": web.url, "EVOLUTION_BASE_URL": sim.url, "EVOLUTION_API_KEY": sim.config.api_key}
    if options.settings_file is not None:  # the commands a user types next work against the same world
        write_state_env(options.settings_file, world)
        say(f"  {t('demo.settings_saved', path=options.settings_file)}")
    try:
        with environment(world):
            _flow(options, say, report, started, sim)
            _model_preview(options, say, report, model.base_url, model.state.config.api_key or "")
            if options.keep_running:
                _live(options, say, web.url, sim.url)
    finally:
        model.stop()
        sim.stop()
        web.stop()
    return report


def _flow(options: DemoOptions, say: Say, report: DemoReport, started: datetime, sim: Any) -> None:
    from mirage.jobs.queues import INSTANCES, enqueue_unique, queue
    from mirage.jobs.worker import make_worker

    root = str(options.tenants_dir)
    _step(say, 4, "config", path=root)
    _validate_and_lint(say, options.tenants_dir)

    _step(say, 5, "plan_apply")
    _plan_and_apply(say, options.tenants_dir)

    _step(say, 6, "provision")
    numbers = _numbers(started)
    report.numbers_total = len(numbers)
    report.tenants = len({n["tenant"] for n in numbers})
    # apply enqueued provision jobs for new numbers; on a re-run the simulator starts empty, so make sure
    # every active number has its instance (provision is idempotent: it re-creates what is missing).
    run = uuid.uuid4().hex[:8]
    conn_redis = queue(INSTANCES).connection
    with connect() as conn:
        ids = [str(r["id"]) for r in conn.execute("select id from t_numbers where active").fetchall()]
    for number_id in ids:
        enqueue_unique(
            INSTANCES, "mirage.jobs.instances.provision_number", job_id=f"demo:{run}:{number_id}", args=[number_id]
        )
    worker = make_worker([INSTANCES], simple=True, connection=conn_redis)
    worker.work(burst=True, with_scheduler=False)
    numbers = _numbers(started)
    for n in numbers:
        say(f"  {n['tenant']}/{n['key']:<14} {n['wa_number']:<15} {n['instance_name'] or '-':<32} {n['status']}")
    missing = [f"{n['tenant']}/{n['key']}" for n in numbers if not n["instance_name"]]
    if missing:
        raise DemoError(t("demo.not_provisioned", numbers=", ".join(missing)))

    _step(say, 7, "scan")
    for n in numbers:
        sim.scan(n["instance_name"], n["wa_number"])
    _wait("connection.update open", lambda: all(r["connected_now"] for r in _numbers(started)), options.timeout_s)
    numbers = _numbers(started)
    report.numbers_open = sum(1 for n in numbers if n["status"] == "open")
    say("  " + t("demo.all_open", n=report.numbers_open, total=len(numbers)))

    _step(say, 8, "simulate")
    _simulated_day(options, say, report)
    say("")
    say(
        click.style(
            t(
                "demo.done",
                tenants=report.tenants,
                numbers=report.numbers_open,
                rounds=report.rounds,
                messages=report.sent,
            ),
            fg="green" if report.violations == 0 else "red",
            bold=True,
        )
    )
    say(t("demo.next"))


def _live(options: DemoOptions, say: Say, web_url: str, sim_url: str) -> None:
    """The runtime live on this machine, time running 1/time_factor faster, until Ctrl-C; and a sign-in link."""
    import threading

    from mirage.engine.calendar import tenant_zone
    from mirage.jobs import runtime
    from mirage.jobs.queues import connection
    from mirage.reconcile.service import load
    from mirage.simulation.live import run_live, scaled_clock

    fleet, _ = load(options.tenants_dir, None)
    slug, tenant = sorted(fleet.tenants.items())[0]
    factor = 1 / options.time_factor
    origin = datetime.combine(next_weekday(datetime.now(UTC).date()), LIVE_FROM, tzinfo=tenant_zone(tenant.timezone))
    clock = scaled_clock(origin, factor)
    say("")
    say(click.style(t("demo.live", factor=f"{factor:g}", origin=origin.isoformat(timespec="minutes")), bold=True))
    emails = [*tenant.viewers, *(m.email for m in tenant.members)]
    if emails:
        say(t("demo.signin", tenant=slug, email=emails[0], url=_signin_link(web_url, slug, emails[0])))
    say(t("demo.keep_running", web=web_url, sim=sim_url))
    stop = threading.Event()
    # In this (the main) thread: RQ's job timeouts use SIGALRM. Ctrl-C ends it.
    with runtime.simulated(clock, seed=0), contextlib.suppress(KeyboardInterrupt):
        run_live(clock, connection(), stop)


def _signin_link(web_url: str, slug: str, email: str) -> str:
    from mirage.db.sessions import service_session
    from mirage.db.viewers import create_link

    with connect() as conn, service_session(conn) as c:
        link = create_link(c, slug, email, timedelta(days=1), created_by="mirage demo", now=datetime.now(UTC))
    return f"{web_url}/signin#{link.token}"


def _simulated_day(options: DemoOptions, say: Say, report: DemoReport) -> None:
    """One day of the real runtime in virtual time (`mirage simulate --days 1`): rounds planned by the tick,
    texts written, sends claimed and delivered, turns passed by webhooks; nothing here decides a message."""
    from mirage.simulation.report import as_text
    from mirage.simulation.session import SimulationOptions, report_of, simulation

    day = next_weekday(datetime.now(UTC).date())
    _command(say, "simulate", str(options.tenants_dir), "--days", "1", "--start", day.isoformat(), "--seed", "42")
    sim_options = SimulationOptions(  # on the demo's own Postgres server, in a scratch database dropped after
        options.tenants_dir, days=1, start=day, seed=42, server=postgres_backend(get_settings()).url
    )
    with simulation(sim_options, lambda line: say(f"  {line}")) as run:
        result = report_of(run)
    report.rounds = int(result.stats["rounds"])
    report.sent = int(result.stats["sent"])
    report.violations = result.violations
    report.transcript = result.transcript
    for m in result.transcript[:TRANSCRIPT_LINES]:
        where = f"{m['tenant']}/{m['conversation']}" if m["conversation"] else m["tenant"]
        say(f"  {m['at'][11:16]}  {where:<34} {m['from']:>12} -> {m['to']:<12} {m['text']}")
    if len(result.transcript) > TRANSCRIPT_LINES:
        say("  " + t("simulate.more", n=len(result.transcript) - TRANSCRIPT_LINES))
    text = as_text(result)
    checks = text.split(t("simulate.checks"), 1)[1].split("\n\n", 1)[0]
    say(t("simulate.checks") + checks)
    say(t("simulate.verdict_ok") if result.violations == 0 else t("simulate.verdict_fail", n=result.violations))


def _model_preview(options: DemoOptions, say: Say, report: DemoReport, base_url: str, api_key: str) -> None:
    """`mirage say` through a model: the first conversation's round written by the real openai client against the
    OpenAI-compatible simulator, with the runtime's guards (the simulated day above used the offline generator)."""
    import random

    from mirage.engine.generation import Line, LLMConfig
    from mirage.engine.generation.preview import ROUND, speakers
    from mirage.integrations.openai import compose
    from mirage.logs import register_secret
    from mirage.reconcile.service import load

    register_secret(api_key)
    fleet, _ = load(options.tenants_dir, None)
    slug, tenant = sorted(fleet.tenants.items())[0]

    def voices_of(c: Any) -> int:
        try:
            return len(speakers(tenant, c))
        except MirageError:  # no bot with a persona
            return 0

    # the first conversation between two bots with personas (a bot<->human one has a single voice)
    key, conv = max(sorted(tenant.conversations.items()), key=lambda kc: min(voices_of(kc[1]), 2))
    _command(say, "say", f"{slug}/{key}", "--n", "1")
    voices = speakers(tenant, conv)
    llm = LLMConfig(model=conv.openai_model, temperature=conv.temperature, api_key=api_key, base_url=base_url)
    rng, topic = random.Random(42), next(iter(conv.topics.values()), None)
    history: list[tuple[str, str]] = []
    for step, side in ROUND:
        who, persona = voices[side % len(voices)]
        lines = [Line(text, author == who) for author, text in history]
        out = compose(step, persona, topic, lines, "morning", rng, llm)
        history.append((who, out.text))
        report.model_texts.append(out.text)
        tokens = f", {out.tokens} tokens" if out.tokens else ""
        say(f"  {step:<9} {persona.name:<12} {out.text}  ({out.source}{tokens})")


def next_weekday(today: date) -> date:
    """`today`, or the Monday after a weekend (the examples' conversations rest on Sundays)."""
    return today + timedelta(days={5: 2, 6: 1}.get(today.weekday(), 0))


def _validate_and_lint(say: Say, root: Path) -> None:
    """`mirage validate` and `mirage lint --strict`: a ConfigError lists every problem; lint findings block."""
    from mirage.reconcile.service import lint_problems, load

    _command(say, "validate", str(root))
    fleet, _ = load(root, None)
    say(t("config.valid", n=len(fleet.tenants)))
    _command(say, "lint", str(root), "--strict")
    if findings := lint_problems(fleet):
        for problem in findings:
            say(str(problem))
        raise DemoError(t("plan.lint_blocked", n=len(findings)))
    say(t("config.lint_summary", errors=0, warnings=0, n=len(fleet.tenants)))


def _plan_and_apply(say: Say, root: Path) -> None:
    """`mirage plan` then `mirage apply --yes`: one transaction, then the runtime jobs (and any drift) enqueued."""
    from mirage.jobs.sync import enqueue_effects, enqueue_runtime_drift
    from mirage.reconcile.apply import apply_plan
    from mirage.reconcile.render import render_text
    from mirage.reconcile.service import load, make_plan

    _command(say, "plan", str(root), "--compact")
    _, desired = load(root, None)
    with connect() as conn:
        plan = make_plan(conn, desired)
        say(render_text(plan, compact=True).rstrip("\n"))
        _command(say, "apply", str(root), "--yes", "--compact")
        if plan.empty:
            say(render_text(plan, compact=True).rstrip("\n"))
            effects: tuple[Any, ...] = ()
        else:
            result = apply_plan(plan, conn, desired, enqueue=None)
            s = result.summary
            say(t("plan.applied", add=s.add, change=s.change, destroy=s.destroy, apply_id=result.apply_id))
            effects = result.effects
        report = enqueue_effects(effects)
        _, more = enqueue_runtime_drift(conn)
    failed = [*report.failed, *more.failed]
    if failed:
        jobs = ", ".join(f"{e.job_id} ({err})" for e, err in failed[:3])
        raise DemoError(t("plan.effects_failed", n=len(failed), jobs=jobs))
    if effects:
        say(t("plan.enqueued", n=len(report.enqueued), total=len(effects)))


def _count(sql: str, *params: Any) -> int:
    with connect() as conn:
        row: dict[str, Any] | None = conn.execute(sql, params).fetchone()
    return int(row["n"]) if row else 0
