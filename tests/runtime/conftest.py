"""Runtime test harness. Real: Postgres, Redis, the Evolution simulator over HTTP, Mirage's webhook app on a
loopback port (the simulator posts its webhooks there), RQ jobs run in process by SimpleWorker. The clock is a
SettableClock (virtual time); `Harness.run()` releases RQ's scheduled jobs whose virtual instant has come.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from cryptography.fernet import Fernet
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry

from mirage.engine.clock import SettableClock
from mirage.integrations.evolution import lifecycle
from mirage.integrations.evolution.client import RetryPolicy, close_pool
from mirage.integrations.evolution_sim import SimConfig, SimHandle, run_in_thread
from mirage.integrations.evolution_sim import world as sim_world
from mirage.jobs import queues, runtime
from mirage.jobs.rounds import conversation_tick
from mirage.settings import Settings, get_settings
from mirage.web.app import create_app
from tests.evolution.helpers import make_number, make_tenant, wait_until
from tests.webhooks.conftest import LiveServer

MONDAY_0800_SP = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)  # 08:00 in São Paulo, a Monday
PHONES = ("+5511911110001", "+5511911110002", "+5511911110003", "+5511911110004")
RUNTIME_QUEUES = (queues.INSTANCES, queues.EVENTS, queues.ROUNDS, queues.MESSAGES)


class InProcessWorker(SimpleWorker):
    """A SimpleWorker without the command pub/sub channel: stopping its listener thread can hang for a minute
    (redis-py PubSubWorkerThread.join) when workers are created many times a second, as the harness does."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


@dataclass
class Harness:
    db: psycopg.Connection[Any]
    redis: redis_lib.Redis
    sim: SimHandle
    clock: SettableClock
    tenant_id: uuid.UUID
    numbers: dict[str, uuid.UUID] = field(default_factory=dict)
    conversation_id: uuid.UUID | None = None

    def q(self, name: str) -> Queue:
        return Queue(name, connection=self.redis)

    def release_due(self) -> int:
        """Move scheduled jobs whose (virtual) instant has come to their queues."""
        moved = 0
        now_ts = self.clock.now().timestamp()
        for name in (queues.ROUNDS, queues.MESSAGES):
            q = self.q(name)
            registry = ScheduledJobRegistry(queue=q)
            for job_id in registry.get_job_ids(0, -1):
                score = registry.get_scheduled_time(job_id).timestamp()
                if score <= now_ts:
                    registry.remove(job_id)
                    job = q.fetch_job(job_id)
                    if job is not None:
                        q.enqueue_job(job)
                        moved += 1
        return moved

    def next_scheduled(self) -> datetime | None:
        times = []
        for name in (queues.ROUNDS, queues.MESSAGES):
            registry = ScheduledJobRegistry(queue=self.q(name))
            times += [registry.get_scheduled_time(j) for j in registry.get_job_ids(0, -1)]
        return min(times) if times else None

    def work(self) -> bool:
        worked = InProcessWorker([self.q(n) for n in RUNTIME_QUEUES], connection=self.redis).work(
            burst=True, with_scheduler=False
        )
        return bool(worked)

    def settle(self, quiet_s: float = 0.05, timeout: float = 15.0) -> None:
        """Run jobs until nothing is queued, no simulator webhook is in flight, and webhooks stopped arriving for
        `quiet_s`. (Without the in-flight check a loaded machine could return before the webhook of a message a
        person just wrote had even been answered.)"""
        deadline = time.monotonic() + timeout
        last = self.count("select count(*) as n from t_webhook_events")
        calm_since = time.monotonic()
        busy = False
        while time.monotonic() < deadline:
            self.release_due()
            ran = self.work()
            events = self.count("select count(*) as n from t_webhook_events")
            in_flight = any(  # posted or about to be, with no answer yet (a retry's wait does not count)
                not d.done and d.status is None and d.error is None for d in list(self.sim.world.webhooks.deliveries)
            )
            if ran or events != last or in_flight:
                last, calm_since, busy = events, time.monotonic(), True
            elif not busy or time.monotonic() - calm_since >= quiet_s:
                return
            time.sleep(0.005)
        kinds = self.rows("select event_type, status, count(*) as n from t_webhook_events group by 1, 2")
        raise AssertionError(f"runtime did not settle: {kinds}")

    def tick(self) -> dict[str, int]:
        return conversation_tick()

    def count(self, sql: str, *params: Any) -> int:
        self.db.commit()
        row = self.db.execute(sql, params).fetchone()
        self.db.commit()
        return int(row["n"]) if row else 0

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        self.db.commit()
        out = self.db.execute(sql, params).fetchall()
        self.db.commit()
        return out

    def sends(self, number_key: str | None = None) -> int:
        """sendText POSTs the simulator accepted (from one instance, or all)."""
        name = f"mirage-acme-{number_key}" if number_key else None
        return sum(1 for m in list(self.sim.world.messages.values()) if name is None or m.from_instance == name)

    def run_until(self, end: datetime, tick_every: timedelta = timedelta(minutes=1)) -> None:
        """Advance virtual time to `end`: ticks every `tick_every`, jumping to scheduled jobs in between."""
        next_tick = self.clock.now()
        while self.clock.now() < end:
            if self.clock.now() >= next_tick:
                self.tick()
                next_tick = self.clock.now() + tick_every
            self.settle()
            upcoming = self.next_scheduled()
            target = min(t for t in (upcoming, next_tick, end) if t is not None)
            self.clock.set(max(target, self.clock.now()))


FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, total_time=5.0)


@pytest.fixture
def make_harness(
    db: psycopg.Connection[Any], redis: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Harness]]:
    monkeypatch.setenv("MIRAGE_SECRET_KEYS", Fernet.generate_key().decode())
    monkeypatch.delenv("EVOLUTION_BASE_URL", raising=False)
    monkeypatch.delenv("EVOLUTION_API_KEY", raising=False)
    monkeypatch.setattr(lifecycle, "RETRY", FAST_RETRY)
    get_settings.cache_clear()
    started: list[Any] = []

    def make(numbers: int = 2, sim_options: dict[str, Any] | None = None, **schedule: Any) -> Harness:
        clock = SettableClock(MONDAY_0800_SP)
        monkeypatch.setattr(runtime, "clock", lambda: clock)
        server = LiveServer(create_app(Settings.from_env())).__enter__()
        started.append(server)
        monkeypatch.setenv("MIRAGE_PUBLIC_URL", server.url)
        get_settings.cache_clear()
        options = {"time_factor": 0.001, "seed": 7, "read_after_s": None, **(sim_options or {})}
        # The simulated WhatsApp stamps messages with the harness's clock, as Mirage's runtime does: with the wall
        # clock an inbound message fell on another day than the virtual Monday once the real date moved on.
        monkeypatch.setattr(sim_world, "epoch", lambda: int(clock.now().timestamp()))
        sim = run_in_thread(SimConfig(**options))
        started.append(sim)
        tenant = make_tenant(db, base_url=sim.url, api_key=sim.api_key)
        h = Harness(db, redis, sim, clock, tenant)
        for i in range(numbers):
            key = f"bot{i + 1}"
            h.numbers[key] = make_number(db, tenant, key, PHONES[i])
        seed_conversation(h, **schedule)
        for nid in h.numbers.values():
            queues.enqueue_unique(
                queues.INSTANCES, "mirage.jobs.instances.provision_number", job_id=f"p:{nid}", args=[str(nid)]
            )
        h.work()
        # The webhook service reloads its auth directory on an unknown credential at most once a second: let the
        # new sessions become known before the phones scan (the simulator's fast retries would give up first).
        time.sleep(1.1)
        for i, key in enumerate(h.numbers):
            sim.scan(f"mirage-acme-{key}", PHONES[i])
        wait_until(lambda: h.count("select count(*) as n from t_numbers where status = 'open'") == numbers)
        return h

    yield make
    close_pool()  # the next test's simulator listens on another port
    for s in reversed(started):
        if isinstance(s, LiveServer):
            s.__exit__(None, None, None)
        else:
            s.stop()


def seed_conversation(
    h: Harness,
    *,
    windows: dict[str, tuple[str, str]] | None = None,
    max_rounds: int = 2,
    pause: tuple[int, int] = (20, 40),
    exchanges: tuple[int, int] = (2, 3),
    delays: tuple[int, int] = (4000, 25000),
    quiet: tuple[str, str] = ("22:00", "07:00"),
    hourly: int = 30,
    daily: int = 200,
    mode: str = "pair",
) -> None:
    db = h.db
    windows = windows or {"morning": ("08:00", "11:30"), "afternoon": ("14:00", "17:00"), "evening": ("19:00", "21:30")}
    db.execute(
        "update t_settings_tenant set min_delay_ms = %s, max_delay_ms = %s, quiet_hours = %s, hourly_burst_limit = %s, "
        "daily_limit = %s where tenant_id = %s",
        (
            delays[0],
            delays[1],
            psycopg.types.json.Jsonb({"start": quiet[0], "end": quiet[1]}),
            hourly,
            daily,
            h.tenant_id,
        ),
    )
    persona = db.execute(
        "insert into t_personas (tenant_id, key, name, greeting_morning, greeting_afternoon, greeting_evening, "
        "phrases) values (%s, 'tio', 'Tio', %s, %s, %s, %s) returning id",
        (
            h.tenant_id,
            ["Bom dia, meu querido!", "Bom diaaa, família!"],
            ["Boa tarde, meu querido!", "E aí, boa tarde!"],
            ["Boa noite, meu querido!", "Opa, boa noite!"],
            psycopg.types.json.Jsonb(
                {
                    "comments": ["O jogo de ontem foi bom demais", "Domingo tem churrasco"],
                    "questions": ["E a família, como vai?", "Vai ver o jogo quarta?"],
                    "answers": ["Tudo na paz, graças a Deus!", "Vou sim, não perco"],
                    "goodbyes": ["Abraço, fica com Deus!", "Valeu, até mais!"],
                }
            ),
        ),
    ).fetchone()["id"]
    db.execute("update t_numbers set persona_id = %s where tenant_id = %s", (persona, h.tenant_id))
    cid = db.execute(
        "insert into t_conversations (tenant_id, key, name, mode, exchanges_min, exchanges_max) "
        "values (%s, 'papo', 'Papo', %s, %s, %s) returning id",
        (h.tenant_id, mode, exchanges[0], exchanges[1]),
    ).fetchone()["id"]
    h.conversation_id = cid
    db.execute("insert into t_settings_conversation (tenant_id, conversation_id) values (%s, %s)", (h.tenant_id, cid))
    for order, nid in enumerate(h.numbers.values()):
        db.execute(
            "insert into t_conversation_participants (tenant_id, conversation_id, participant_kind, number_id, "
            "start_order) values (%s, %s, 'bot', %s, %s)",
            (h.tenant_id, cid, nid, order),
        )
    for day in ("mon", "tue", "wed", "thu", "fri"):
        spans = {p: psycopg.types.json.Jsonb({"start": s, "end": e}) for p, (s, e) in windows.items()}
        db.execute(
            "insert into t_conversation_schedule (tenant_id, conversation_id, day, morning_enabled, morning_window, "
            "afternoon_enabled, afternoon_window, evening_enabled, evening_window, max_rounds_per_window, "
            "pause_between_rounds_min, pause_between_rounds_max) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                h.tenant_id,
                cid,
                day,
                "morning" in spans,
                spans.get("morning"),
                "afternoon" in spans,
                spans.get("afternoon"),
                "evening" in spans,
                spans.get("evening"),
                max_rounds,
                pause[0],
                pause[1],
            ),
        )
    db.execute(
        "insert into t_topics (tenant_id, conversation_id, key, seed) values (%s, %s, 'futebol', 'o jogo de quarta')",
        (h.tenant_id, cid),
    )
    db.commit()
