"""Opt-out detection speed, and webhook ingest with detection on versus off, next to issue 13's targets.

    .venv/bin/python bench/optout.py [--texts 200000] [--events 4000] [--rounds 2]

1. The pure detector (`mirage.engine.optout.detect`) over a mix of what people send (small talk, opt-outs,
   ambiguous replies, long messages, emoji) with a policy's default keywords, in this process.
   Target: >= 50,000 messages/s.
2. Webhook ingest (bench/webhooks.py's server, workload and client: durable, normalised into t_messages) while a
   worker process runs the follow-up job of every stored message (`on_message`, where detection runs), first
   with detection switched off in that worker (a bench-only stand-in), then on; 3 % of people's messages opt
   out. Runs alternate; medians compared. Target: ingest with detection on >= 90 % of ingest with it off. The
   webhook itself runs no detection.
Postgres: DATABASE_URL's server, else the embedded one (a scratch database, dropped after); Redis: REDIS_URL's,
else the embedded one (database 9, flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from bench import webhooks as wb  # noqa: E402

TARGET_TEXTS_PER_S = 50_000
TARGET_KEPT = 0.90

# A follow-up worker; "off" replaces detection by a no-op in this process only (never in Mirage itself).
WORKER = """
import sys
from rq import SimpleWorker
import mirage.jobs.rounds as rounds
from mirage.jobs import queues
if sys.argv[1] == "off":
    rounds.check_inbound = lambda c, message_id, now: "detection off (bench)"
class Worker(SimpleWorker):  # no command channel: its listener thread can take a minute to stop
    def subscribe(self): pass
    def unsubscribe(self): pass
Worker([queues.queue(queues.ROUNDS)], connection=queues.connection()).work(with_scheduler=False)
"""


def corpus(rng: random.Random) -> list[str]:
    from mirage.integrations.evolution_sim.config import HUMAN_REPLIES, OPTOUT_REPLIES

    extra = [
        "vou sair mais tarde, depois te chamo",
        "Não",
        "para com isso kkk",
        "me tira dessa lista por favor",
        "Bom dia, tudo bem com vocês? Ontem fui na feira e comprei umas frutas ótimas, depois te mando foto 🍉🍍",
        "Please stop messaging me",
        "ok",
        "",
    ]
    pool = list(HUMAN_REPLIES) * 6 + list(OPTOUT_REPLIES) + extra
    return [rng.choice(pool) for _ in range(5000)]


def detector_rate(texts: int) -> float:
    from mirage.config.outreach import DEFAULT_OPTOUT_KEYWORDS
    from mirage.engine.optout import detect

    sample = corpus(random.Random(13))
    keywords = tuple(DEFAULT_OPTOUT_KEYWORDS)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for i in range(texts):
            detect(sample[i % len(sample)], keywords)
        best = max(best, texts / (time.perf_counter() - start))
    return best


def with_optouts(work: wb.Workload, rng: random.Random) -> wb.Workload:
    """3 % of people's messages say SAIR (they write t_optouts, cancel, pause: detection's expensive path)."""
    bodies = [
        b.replace("Olá, mensagem".encode(), b"SAIR", 1) if b'"fromMe": false' in b and rng.random() < 0.03 else b
        for b in work.bodies
    ]
    return wb.Workload(bodies, work.unique_events, work.unique_messages)


def ingest_rates(args: argparse.Namespace) -> dict[str, float]:
    from cryptography.fernet import Fernet

    from mirage.backends import redis_backend
    from mirage.db.scratch import drop_database
    from mirage.settings import get_settings

    os.environ["MIRAGE_SECRET_KEYS"] = Fernet.generate_key().decode()
    server, url = wb.scratch_database()
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    redis_url = os.environ.get("REDIS_URL") or redis_backend().url.split("?")[0] + "?db=9"
    os.environ["REDIS_URL"] = redis_url
    get_settings.cache_clear()
    import redis

    r = redis.Redis.from_url(redis_url)
    rng = random.Random(14)
    contacts = [f"+55219{rng.randrange(10**7, 10**8)}" for _ in range(300)]
    with psycopg.connect(url, row_factory=dict_row) as conn:
        seeded = wb.seed(conn, contacts)
    env = {**os.environ, "MIRAGE_LOG_LEVEL": "WARNING", "MIRAGE_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT)}
    port = wb._free_port()
    app = wb._start("mirage.web.app:app_from_env", port, env)
    rates: dict[str, list[float]] = {}
    try:
        for round_no in range(args.rounds + 1):  # round 0 warms up
            for mode in ("off", "on"):
                r.flushdb()
                worker = subprocess.Popen(
                    [sys.executable, "-c", WORKER, mode],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    n = 600 if round_no == 0 else args.events
                    work = with_optouts(wb.workload(n, 0.1, seeded.instance, contacts, rng, seeded.token), rng)
                    res = asyncio.run(wb.drive(f"http://127.0.0.1:{port}", work.bodies, seeded.headers(), 32))
                finally:
                    worker.kill()  # disposable: a job cut short rolls back
                    worker.wait(timeout=20)
                if round_no:
                    print(f"  round {round_no} detection {mode:3}  {wb._line(res)}  statuses {res.statuses}")
                    rates.setdefault(mode, []).append(res.rate)
    finally:
        app.terminate()
        app.wait(timeout=20)
        r.flushdb()
        drop_database(server, f"mirage_bench_{os.getpid()}")  # wb.scratch_database's name
    for mode, r in rates.items():
        print(f"  detection {mode:3}: runs from {min(r):.0f} to {max(r):.0f} events/s (the machine's other load shows)")
    return {mode: statistics.median(r) for mode, r in rates.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--texts", type=int, default=200_000, help="texts per detector run (best of 3)")
    ap.add_argument("--events", type=int, default=2500, help="webhook requests per measured ingest run")
    ap.add_argument("--rounds", type=int, default=5, help="ingest runs per mode (alternating); the median counts")
    args = ap.parse_args()

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    rate = detector_rate(args.texts)
    ingest = ingest_rates(args)
    kept = ingest["on"] / ingest["off"]
    print(f"\nopt-out, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    ok_rate, ok_kept = verdict(rate >= TARGET_TEXTS_PER_S), verdict(kept >= TARGET_KEPT)
    print(f"  detection, one process   {rate:9.0f} messages/s  target >= {TARGET_TEXTS_PER_S}  {ok_rate}")
    print(f"  ingest, detection off    {ingest['off']:9.0f} events/s (median of {args.rounds} runs)")
    on = ingest["on"]
    print(f"  ingest, detection on     {on:9.0f} events/s  {kept:.1%} of off, target >= {TARGET_KEPT:.0%}  {ok_kept}")


if __name__ == "__main__":
    main()
