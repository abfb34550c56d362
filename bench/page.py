"""The metrics page under load: 1,000,000 messages in one tenant, 20 concurrent viewers; print figures next to targets.

    .venv/bin/python bench/page.py [--messages 1000000] [--viewers 20] [--requests 30]

Against a fresh database (DATABASE_URL's server, or the embedded Postgres and Redis under .mirage-test-bench/),
one tenant gets 20 bot numbers in 5 conversations, rounds, and --messages messages over 90 days (half sent,
half the receiving bot's copy, statuses and topics as the runtime writes them; today's share included, which
the page counts live). Then:
  * refreshing the views: `select public.refresh_metrics()` as `mirage cron` runs it (concurrently, the views
    already populated); the first, non-concurrent fill is printed for scale;
  * the overview (`/`) and a number page (`/numbers/{id}`), default period (7 days), served by a fresh
    `mirage serve --workers N` over real HTTP, each of --viewers signed-in clients asking for one page after
    the other --requests times (the target's figure); p50 / p95 latency per page, measured by the client;
    for information also one viewer alone, and the viewers reading (one page every --pace seconds each).
Targets (this machine): overview and number page p95 <= 150 ms with 20 concurrent viewers; refresh <= 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import redis
from cryptography.fernet import Fernet
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from mirage.db.scratch import create_database, drop_database
from mirage.db.sessions import service_session
from mirage.db.viewers import create_link

ROOT = Path(__file__).resolve().parents[1]
BENCH_STATE = Path(os.environ.get("MIRAGE_BENCH_STATE_DIR") or ROOT / ".mirage-test-bench")
TARGETS = {"overview p95 ms": 150.0, "number page p95 ms": 150.0, "refresh s": 10.0}
NUMBERS, CONVERSATIONS, DAYS, PER_ROUND = 20, 5, 90, 20
SESSIONS = 5  # sign-ins (the route allows 10 a minute per address); the viewers share them round-robin

# Deterministic ids (md5 of a name) let one INSERT ... SELECT per table refer to rows of another.
SEED = """
insert into t_tenants (id, slug, name, timezone, locale)
  values (md5('tenant')::uuid, 'bench', 'Padaria Bench', 'America/Sao_Paulo', 'pt-BR');
insert into t_settings_tenant (tenant_id, daily_limit) values (md5('tenant')::uuid, 200);
insert into t_users (tenant_id, email, role) values (md5('tenant')::uuid, 'socio@bench.example', 'viewer');
insert into t_numbers (id, tenant_id, key, label, wa_number, status, active, warmup_started_on)
  select md5('n' || k)::uuid, md5('tenant')::uuid, 'n' || k, 'Número ' || k, '+55119' || lpad(k::text, 8, '0'),
         'open', true, current_date - 60
    from generate_series(0, %(numbers)s::int - 1) k;
insert into t_conversations (id, tenant_id, key, name, mode)
  select md5('c' || c)::uuid, md5('tenant')::uuid, 'c' || c, 'Conversa ' || c, 'pair'
    from generate_series(0, %(conversations)s::int - 1) c;
insert into t_pairings (id, tenant_id, conversation_id, number_a_id, number_b_id)
  select md5('p' || c)::uuid, md5('tenant')::uuid, md5('c' || c)::uuid, md5('n' || (4 * c))::uuid,
         md5('n' || (4 * c + 1))::uuid
    from generate_series(0, %(conversations)s::int - 1) c;
insert into t_rounds (id, tenant_id, conversation_id, pairing_id, status, daypart, window_date, exchanges_planned,
                      exchanges_done, started_at, finished_at, created_at)
  select md5('r' || r)::uuid, md5('tenant')::uuid, md5('c' || (r %% %(conversations)s))::uuid,
         md5('p' || (r %% %(conversations)s))::uuid, (array['done', 'done', 'aborted'])[1 + r %% 3]::round_status,
         'morning', (at at time zone 'America/Sao_Paulo')::date, %(per_round)s / 2,
         case when r %% 3 = 2 then 1 else %(per_round)s / 2 end, at, at + interval '30 minutes', at
    from generate_series(0, %(rounds)s::int - 1) r,
         lateral (select %(now)s::timestamptz - %(span)s::interval * (1 - r::float8 / %(rounds)s) as at) t;
"""

# Message i belongs to round i / PER_ROUND; even i are the sender's send, odd i the receiving bot's copy.
MESSAGES = """
insert into t_messages (tenant_id, conversation_id, round_id, from_number_id, to_number_id, from_jid, to_jid,
                        wa_msg_id, direction, body, meta, status, idempotency_key, wa_ts, sent_at, delivered_at,
                        read_at, created_at)
select md5('tenant')::uuid, md5('c' || c)::uuid, md5('r' || r)::uuid, md5('n' || a)::uuid, md5('n' || b)::uuid,
       a || '@s.whatsapp.net', b || '@s.whatsapp.net', 'WA' || i, dir::msg_direction, 'mensagem ' || i,
       case when dir = 'out' then jsonb_build_object('app_origin', 'bot', 'topic',
                                                     (array['futebol', 'tempo', 'receitas', 'feira'])[1 + r %% 4])
            else '{}'::jsonb end,
       st::msg_status, case when dir = 'out' then 'bench:' || i end,
       case when dir = 'in' then at end,
       case when dir = 'out' and st in ('sent', 'delivered', 'read') then at end,
       case when dir = 'out' and st in ('delivered', 'read') then at + interval '1 second' end,
       case when dir = 'out' and st = 'read' then at + interval '5 seconds' end,
       at
  from generate_series(%(first)s::int, %(last)s::int) i,
       lateral (select i / %(per_round)s as r) x,
       lateral (select r %% %(conversations)s as c,
                       %(now)s::timestamptz - %(span)s::interval * (1 - i::float8 / %(messages)s) as at,
                       case when i %% 2 = 0 then 'out' else 'in' end as dir) y,
       lateral (select 4 * c + (i / 2) %% 2 as a, 4 * c + 1 - (i / 2) %% 2 as b,
                       case when dir = 'in' then 'received'
                            else (array['read', 'delivered', 'sent', 'read', 'failed', 'read'])[1 + (i / 2) %% 6]
                       end as st) z
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str, messages: int, now: datetime) -> None:
    rounds = max(1, messages // PER_ROUND)
    params = {
        "numbers": NUMBERS,
        "conversations": CONVERSATIONS,
        "per_round": PER_ROUND,
        "rounds": rounds,
        "messages": messages,
        "now": now,
        "span": f"{DAYS} days",
    }
    with psycopg.connect(url) as conn:
        for statement in SEED.split(";\n"):
            if statement.strip():
                conn.execute(statement, params)
        conn.commit()
        step = 100_000
        for first in range(0, messages, step):  # progress on long work
            last = min(messages, first + step) - 1
            conn.execute(MESSAGES, {**params, "first": first, "last": last})
            conn.commit()
            print(f"  seeded {last + 1:,} / {messages:,} messages", file=sys.stderr, flush=True)
        conn.execute("analyze")
        conn.commit()


def refresh(url: str) -> tuple[float, dict[str, int]]:
    """Seconds for `public.refresh_metrics()`, and the milliseconds it reports per view."""
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        rows = conn.execute("select view_name, duration_ms from public.refresh_metrics()").fetchall()
        return time.perf_counter() - started, {name: ms for name, ms in rows}


def links(url: str, count: int, now: datetime) -> list[str]:
    tokens = []
    with psycopg.connect(url, row_factory=dict_row) as conn, service_session(conn) as c:
        for _ in range(count):
            link = create_link(c, "bench", "socio@bench.example", timedelta(hours=1), created_by="bench", now=now)
            tokens.append(link.token)
    return tokens


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"`mirage serve` exited {proc.returncode}")
        try:
            if httpx.get(base + "/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("`mirage serve` did not become ready")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def sign_in(base: str, tokens: list[str]) -> list[dict[str, str]]:
    """One session cookie per sign-in link (the route allows 10 sign-ins a minute per address)."""
    cookies = []
    async with httpx.AsyncClient(base_url=base, follow_redirects=False) as c:
        for token in tokens:
            r = await c.post("/signin", data={"token": token})
            if r.status_code != 303 or not r.cookies:
                raise SystemExit(f"sign-in failed: {r.status_code} {r.text[:200]}")
            cookies.append(dict(r.cookies))
    return cookies


async def load(
    base: str, cookies: list[dict[str, str]], number: str, viewers: int, requests: int, pace_s: float = 0.0
) -> dict[str, list[float]]:
    """Each viewer asks for the overview and the number page in turn, `requests` times: back to back, or one page
    every `pace_s` seconds (a person reading), starting at staggered instants."""
    pages = {"overview": "/", "number page": f"/numbers/{number}"}
    seen: dict[str, list[float]] = {name: [] for name in pages}

    async def viewer(k: int) -> None:
        async with httpx.AsyncClient(base_url=base, cookies=cookies[k % len(cookies)], timeout=60.0) as c:
            begin = time.perf_counter() + pace_s * k / max(1, viewers)
            for n in range(requests):
                if pace_s:
                    await asyncio.sleep(max(0.0, begin + n * pace_s - time.perf_counter()))
                name = list(pages)[(n + k) % 2]
                started = time.perf_counter()
                r = await c.get(pages[name])
                elapsed = (time.perf_counter() - started) * 1000
                if r.status_code != 200 or 'data-figure="sent_today"' not in r.text:
                    raise SystemExit(f"{pages[name]} answered {r.status_code}: {r.text[:300]}")
                seen[name].append(elapsed)

    async with httpx.AsyncClient(base_url=base, cookies=cookies[0], timeout=60.0) as warm:
        for path in pages.values():  # first requests fill the pool and jinja's cache
            await warm.get(path)
    started = time.perf_counter()
    await asyncio.gather(*(viewer(k) for k in range(viewers)))
    seen["_s"] = [time.perf_counter() - started]
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000, help="messages in the tenant")
    ap.add_argument("--viewers", type=int, default=20, help="concurrent signed-in viewers")
    ap.add_argument("--requests", type=int, default=30, help="page requests per viewer (overview and number page)")
    ap.add_argument("--pace", type=float, default=2.0, help="seconds between pages of a reading viewer (information)")
    ap.add_argument("--workers", type=int, default=2, help="`mirage serve --workers` (infra/docker-compose.yml runs 2)")
    args = ap.parse_args()
    from mirage.embedded import ensure_redis, stopped_after

    now = datetime.now(UTC)
    with stopped_after(BENCH_STATE):
        if os.environ.get("DATABASE_URL"):
            server = os.environ["DATABASE_URL"]
        else:
            from mirage.embedded import ensure_postgres

            server = ensure_postgres(BENCH_STATE)
        redis_url = os.environ.get("REDIS_URL") or ensure_redis(BENCH_STATE)
        url = create_database(server, f"mirage_bench_{uuid.uuid4().hex[:8]}")
        proc: subprocess.Popen[bytes] | None = None
        try:
            started = time.perf_counter()
            seed(url, args.messages, now)
            seeded_s = time.perf_counter() - started
            first_fill, _ = refresh(url)
            refresh_s, per_view = refresh(url)
            with psycopg.connect(url) as conn:
                count = conn.execute("select count(*) from t_messages").fetchone()
                row = conn.execute("select id from t_numbers where key = 'n0'").fetchone()
                number = str(row[0]) if row else ""
            port = free_port()
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "REDIS_URL": redis_url,
                "MIRAGE_SECRET_KEYS": os.environ.get("MIRAGE_SECRET_KEYS") or Fernet.generate_key().decode(),
                "MIRAGE_LOG_LEVEL": "WARNING",
                "MIRAGE_DOTENV": "",
            }
            script = Path(sys.executable).parent / "mirage"
            cmd = [str(script)] if script.exists() else [sys.executable, "-m", "mirage"]
            proc = subprocess.Popen(
                [*cmd, "serve", "--port", str(port), "--workers", str(args.workers)], env=env, stderr=subprocess.DEVNULL
            )
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, proc)
            tokens = links(url, SESSIONS + 1, now)
            # the sign-in route allows 10 attempts a minute per address: a run just before this one used some
            redis.Redis.from_url(redis_url).delete("mirage:page:signin:127.0.0.1")
            cookies = asyncio.run(sign_in(base, tokens))
            seen = asyncio.run(load(base, cookies[:SESSIONS], number, args.viewers, args.requests))
            alone = asyncio.run(load(base, cookies[SESSIONS:], number, 1, 20))
            paced = asyncio.run(load(base, cookies[:SESSIONS], number, args.viewers, 10, pace_s=args.pace))
            spent_s = seen.pop("_s")[0]
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
            drop_database(server, conninfo_to_dict(url)["dbname"])

    load_avg = os.getloadavg()[0]
    print(
        f"metrics page: {count[0] if count else 0:,} messages in one tenant (seeded in {seeded_s:.0f} s), "
        f"{args.viewers} concurrent viewers x {args.requests} requests, `mirage serve --workers {args.workers}`, "
        f"{os.cpu_count()} CPUs, load average {load_avg:.1f}"
    )
    print(
        f"  {'throughput':<22} {sum(map(len, seen.values())) / spent_s:8.0f}   pages per second, {args.viewers} viewers"
    )
    figures = {
        "overview p95 ms": percentile(seen["overview"], 0.95),
        "number page p95 ms": percentile(seen["number page"], 0.95),
        "refresh s": refresh_s,
    }
    for page in ("overview", "number page"):
        print(
            f"  {page + ' p50 ms':<22} {percentile(seen[page], 0.5):8.0f}   "
            f"(one viewer alone: p50 {percentile(alone[page], 0.5):.0f} ms, p95 {percentile(alone[page], 0.95):.0f} ms)"
        )
    print(
        f"  {'paced p95 ms':<22} overview {percentile(paced['overview'], 0.95):.0f}, number page "
        f"{percentile(paced['number page'], 0.95):.0f}   (information: {args.viewers} viewers, one page every "
        f"{args.pace:g} s each)"
    )
    print(f"  {'first fill of views s':<22} {first_fill:8.1f}   (the first refresh after the seed)")
    print(f"  {'refresh per view':<22} " + ", ".join(f"{name} {ms / 1000:.1f} s" for name, ms in per_view.items()))
    for name, value in figures.items():
        target = TARGETS[name]
        print(f"  {name:<22} {value:8.1f}   target <= {target:.0f}   {'ok' if value <= target else 'MISSED'}")


if __name__ == "__main__":
    main()
