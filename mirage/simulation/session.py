"""One simulation run: a scratch database and a private Redis, the YAML applied, every number connected in the
virtual-time simulator, then the runtime driven day by day (ADR 0038).

Real: Postgres (a scratch database on the configured server, dropped afterwards), Redis (a private embedded
server in a temporary folder), Mirage's webhook service (its ASGI app, in this process, ADR 0051), the Evolution
simulator on loopback, every RQ job's function.
Virtual: the clock, and so every wait of the runtime and of the simulated phones and people.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from mirage.engine.calendar import tenant_zone
from mirage.engine.clock import SettableClock
from mirage.engine.view import ConversationView
from mirage.errors import MirageError
from mirage.integrations.evolution.client import close_pool, pool_through
from mirage.integrations.evolution_sim.config import HumanConfig, SimConfig
from mirage.integrations.evolution_sim.humans import is_optout
from mirage.settings import environment, get_settings
from mirage.simulation.driver import Driver, Gate, describe
from mirage.simulation.events import EventHeap
from mirage.simulation.gate import any_may_start, window_open
from mirage.simulation.inprocess import InProcessTransport, LoopOf, WebhookService
from mirage.simulation.report import Report, build_report
from mirage.simulation.world import VirtualWorld

log = logging.getLogger(__name__)

Say = Callable[[str], None]
PLACEHOLDER_URLS = {"EVOLUTION_BASE_URL": "http://127.0.0.1:1", "EVOLUTION_API_KEY": "simulated"}
SETUP_LEAD = timedelta(minutes=30)  # numbers connect this long before the first day starts
# Where the instances' webhooks point: the driver hands each one to the webhook service's app in this process.
WEB_URL = "http://mirage.simulated"


class SimulationError(MirageError):
    """The simulation could not run; the message says which step failed."""


@dataclass
class SimulationOptions:
    tenants_dir: Path
    days: int = 7
    start: date = date(2026, 12, 7)
    seed: int = 42
    tick: timedelta = timedelta(seconds=60)
    human: HumanConfig = field(default_factory=HumanConfig)
    scope: tuple[str, ...] | None = None  # tenant slugs; None: every tenant of the folder
    server: str | None = None  # Postgres server for the scratch database; None: the embedded one (never DATABASE_URL)
    span: timedelta | None = None  # virtual time to run from the first day's midnight; None: `days` days


@dataclass
class SimulationRun:
    """What the run left behind, read by the report while the scratch database still exists."""

    options: SimulationOptions
    start: datetime
    end: datetime
    conn_url: str
    driver: Driver
    world: VirtualWorld
    lint: list[str]
    wall_s: float = 0.0  # setup and run
    setup_s: float = 0.0  # scratch database, apply, numbers connected


class _Environ(Mapping[str, str]):
    """The process environment with the simulation's values on top; a `${VAR}` the YAML names and the environment
    lacks (a production secret in CI) reads as a placeholder: nothing real is called with it."""

    def __init__(self, overrides: Mapping[str, str]) -> None:
        self.env = {**os.environ, **overrides}

    def __getitem__(self, key: str) -> str:
        return self.env.get(key, f"simulated-{key.lower()}")

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.env)

    def __len__(self) -> int:
        return len(self.env)


def first_instant(root: Path, start: date, timezones: list[str]) -> datetime:
    """Midnight of `start` in the earliest of the tenants' time zones (UTC when there is none)."""
    zones = timezones or ["UTC"]
    return min(datetime.combine(start, datetime.min.time(), tzinfo=tenant_zone(z)) for z in zones).astimezone(UTC)


@contextlib.contextmanager
def simulation(options: SimulationOptions, say: Say | None = None) -> Iterator[SimulationRun]:
    """Build the world, run `options.days` of virtual time, and yield the run for the report; clean up after."""
    from cryptography.fernet import Fernet

    from mirage.db.scratch import create_database, drop_database
    from mirage.embedded import ensure_postgres
    from mirage.embedded.redis import ensure_redis, stop_redis
    from mirage.jobs import queues, runtime
    from mirage.reconcile.service import load

    note = say or (lambda _: None)
    wall = time.monotonic()
    fleet, _ = load(
        options.tenants_dir, options.scope, _Environ(PLACEHOLDER_URLS)
    )  # fail early, before any server starts
    zones = [t.timezone for t in fleet.tenants.values()]
    start = first_instant(options.tenants_dir, options.start, zones)
    end = start + (options.span if options.span is not None else timedelta(days=options.days))
    server = options.server or ensure_postgres(get_settings().state_dir.resolve())
    name = f"mirage_sim_{os.getpid()}_{secrets.token_hex(3)}"
    note(f"scratch database {name}")
    url = create_database(server, name, durable=False)  # dropped at the end: no WAL flush per commit (ADR 0063)
    folder = Path(tempfile.mkdtemp(prefix="mirage-sim-"))
    stack = contextlib.ExitStack()
    try:
        stack.callback(drop_database, server, name)
        stack.callback(shutil.rmtree, folder, True)
        redis_url = ensure_redis(folder, persistent=False)  # thrown away with its folder: nothing on disk (ADR 0063)
        stack.callback(stop_redis, folder, save=False)
        env = {
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "MIRAGE_SECRET_KEYS": Fernet.generate_key().decode(),
            "MIRAGE_CLOCK": "wall",
        }
        stack.enter_context(environment(env))
        clock = SettableClock(start - SETUP_LEAD)
        stack.enter_context(runtime.simulated(clock, options.seed))
        # One Postgres connection and one Redis client for the run, as a long-running worker keeps them (ADR 0048).
        stack.enter_context(queues.kept_connections())
        run = _build(options, clock, start, end, url, stack, note)
        run.setup_s = time.monotonic() - wall
        note(f"running {options.days} day(s) from {start.isoformat()} (seed {options.seed})")
        days_done = {"n": -1}

        def progress(now: datetime) -> None:
            day = int((now - start) / timedelta(days=1))
            if day > days_done["n"] and start <= now < end:
                days_done["n"] = day
                note(f"day {day + 1}/{options.days} ({(start + timedelta(days=day)).date().isoformat()})")

        run.driver.run_until(end, on_instant=progress)
        run.wall_s = time.monotonic() - wall
        yield run
    finally:
        stack.close()


def _build(
    options: SimulationOptions,
    clock: SettableClock,
    start: datetime,
    end: datetime,
    url: str,
    stack: contextlib.ExitStack,
    note: Say,
) -> SimulationRun:
    from mirage.integrations.evolution_sim.app import create_sim_app
    from mirage.integrations.evolution_sim.runner import serve_in_thread
    from mirage.jobs.queues import connection
    from mirage.web.app import create_app

    heap = EventHeap()
    redis = connection()
    driver = Driver(clock, heap, redis, tick=options.tick)
    stack.callback(driver.close)
    config = SimConfig(seed=options.seed, human=options.human, read_after_s=4.0)
    world = VirtualWorld(config, clock, heap, driver.post)
    sim_app = LoopOf(create_sim_app(world=world))
    sim = serve_in_thread(sim_app)
    stack.callback(sim.stop)
    world.config.server_url = sim.url
    pool_through(sim.url, InProcessTransport(sim_app))  # the runtime's calls: no socket (ADR 0051)
    stack.callback(close_pool)
    driver.service = WebhookService(create_app(get_settings()))  # called in this process, no socket (ADR 0051)
    stack.enter_context(
        environment({"EVOLUTION_BASE_URL": sim.url, "EVOLUTION_API_KEY": config.api_key, "MIRAGE_PUBLIC_URL": WEB_URL})
    )
    lint = _apply(options, note)
    driver.gates = {"conversation_tick": tick_gate(load_views(start)), "outreach_tick": outreach_gate()}
    _connect(driver, sim.url, note)
    return SimulationRun(options, start, end, url, driver, world, lint)


def _apply(options: SimulationOptions, note: Say) -> list[str]:
    """The same validate, plan and apply as `mirage apply`; lint findings are reported, not blocking."""
    from mirage.db.connect import connect
    from mirage.jobs.sync import enqueue_effects
    from mirage.reconcile.apply import apply_plan
    from mirage.reconcile.service import lint_problems, load, make_plan

    fleet, desired = load(options.tenants_dir, options.scope, _Environ({}))
    findings = [str(p) for p in lint_problems(fleet, datetime.combine(options.start, datetime.min.time(), UTC))]
    with connect() as conn:
        plan = make_plan(conn, desired)
        result = apply_plan(plan, conn, desired, enqueue=None)
    report = enqueue_effects(result.effects)
    if report.failed:
        raise SimulationError(f"apply: {len(report.failed)} job(s) could not be enqueued")
    s = result.summary
    note(f"applied {len(fleet.tenants)} tenant(s): {s.add} to add, {s.change} to change")
    return findings


def load_views(now: datetime) -> list[ConversationView]:
    """The conversations as the runtime's tick sees them (the same queries and view builder)."""
    from mirage.db import rounds as db_rounds
    from mirage.jobs.runtime import build_views, db, since_for_snapshot, tx

    with db() as conn, tx(conn) as c:
        snapshot = db_rounds.load_snapshot(c, since_for_snapshot(now))
    return build_views(snapshot)[0]


def tick_gate(views: list[ConversationView]) -> Gate:
    """The first of some instants at which a conversation tick could start a round (see mirage.simulation.gate):
    the rounds are read once for all of them (nothing runs between the instants the driver asks about)."""
    from mirage.db import transcript
    from mirage.engine.rounds import RoundRecord
    from mirage.jobs.runtime import db, tx

    def first_active(instants: Sequence[datetime]) -> datetime | None:
        candidates = [now for now in instants if any(window_open(v, now) for v in views)]
        if not candidates:
            return None
        with db() as conn, tx(conn) as c:
            rows = transcript.recent_rounds(c, min(candidates) - timedelta(days=1))
        records = [
            (
                r["conversation_id"],
                RoundRecord(
                    r["window_date"], r["daypart"], int(r["seq"]), r["status"], r["created_at"], r["finished_at"]
                ),
            )
            for r in rows
        ]
        for now in candidates:
            since = now - timedelta(days=1)  # the rounds the tick's own snapshot would hold
            rounds: dict[str, list[RoundRecord]] = {}
            for conversation, record in records:
                if record.created_at >= since:
                    rounds.setdefault(conversation, []).append(record)
            if any_may_start(views, rounds, now):
                return now
        return None

    return first_active


def outreach_gate() -> Gate:
    """The first of some instants at which an active outreach policy may send (its days, dayparts and quiet hours)
    while a target is still to start or in progress."""
    from mirage.db import transcript
    from mirage.engine.outreach import allowed_at
    from mirage.engine.view import parse_hhmm
    from mirage.jobs.runtime import db, tx

    with db() as conn, tx(conn) as c:
        policies = transcript.outreach_windows(c)
    rules = [
        (
            p["timezone"],
            (parse_hhmm(p["quiet_hours"]["start"]), parse_hhmm(p["quiet_hours"]["end"])),
            tuple(p["dayparts"] or ()),
            tuple(p["allow_days"] or ()),
        )
        for p in policies
    ]

    def first_active(instants: Sequence[datetime]) -> datetime | None:
        first = next((now for now in instants if any(allowed_at(now, *rule) is None for rule in rules)), None)
        if first is None:
            return None
        with db() as conn, tx(conn) as c:  # a target still to start or in progress: the tick has work
            return first if transcript.outreach_has_work(c) else None

    return first_active


def _numbers() -> list[dict[str, Any]]:
    from mirage.db.connect import connect

    with connect() as conn:
        rows = conn.execute(
            "select n.id::text, t.slug, n.key, n.wa_number, n.status::text, s.instance_name "
            "from t_numbers n join t_tenants t on t.id = n.tenant_id left join t_sessions s on s.id = n.session_id "
            "where n.active order by t.slug, n.key"
        ).fetchall()
    return list(rows)


def _connect(driver: Driver, sim_url: str, note: Say) -> None:
    """Provision every number (the RQ jobs apply enqueued), scan each QR code, run until every number is open."""
    import httpx

    driver.drain()  # provision jobs: instances created in the simulator, webhooks queued on the heap
    if driver.service is not None:  # the webhook service knows the new sessions when their webhooks arrive
        driver.service.forget_sessions()
    numbers = _numbers()
    missing = [f"{n['slug']}/{n['key']}" for n in numbers if not n["instance_name"]]
    if missing:
        raise SimulationError(f"not provisioned: {', '.join(missing[:5])}")
    with httpx.Client(timeout=60) as http:
        for n in numbers:
            r = http.post(f"{sim_url}/sim/instances/{n['instance_name']}/scan", json={"number": n["wa_number"]})
            if r.status_code >= 400:
                raise SimulationError(f"scan {n['instance_name']}: {r.status_code} {r.text[:200]}")
    driver.run_until(driver.clock.now() + timedelta(minutes=5))
    closed = [f"{n['slug']}/{n['key']}" for n in _numbers() if n["status"] != "open"]
    if closed:
        raise SimulationError(f"numbers not connected in the simulator: {', '.join(closed[:5])}")
    note(f"connected {len(numbers)} number(s) in the simulator")


def report_of(run: SimulationRun) -> Report:
    """Read the run's rows back and build the report (while the scratch database exists)."""
    from mirage.db import transcript
    from mirage.jobs.runtime import db, tx

    views = load_views(run.start)
    with db() as conn, tx(conn) as c:
        messages, rounds = transcript.messages(c), transcript.rounds(c)
        refused, ignored = transcript.refused(c), transcript.ignored(c)
    human = run.options.human
    report = build_report(
        views,
        messages,
        rounds,
        refused,
        ignored,
        start=run.options.start,
        days=run.options.days,
        seed=run.options.seed,
        opts_out=lambda text: is_optout(text, human),  # what the simulated people mean, not what Mirage knows
    )
    report.stats["wall_s"] = round(run.wall_s, 1)
    report.stats["driver"] = describe(run.driver.counts)
    report.stats["failed_jobs"] = [f"{d}: {e}" for d, e in run.driver.failures[:20]]
    report.stats["lint"] = run.lint
    return report
