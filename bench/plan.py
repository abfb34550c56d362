"""Plan and apply N resources; print times, peak memory and SQL statement counts next to the targets.

    .venv/bin/python bench/plan.py [--resources 10000] [--small 2000] [--repeat 3]

Generates agency-like tenants as YAML (about 500 rows each: numbers, personas, conversations with
participants, pairings, a 7-day schedule and topics, contacts, an outreach policy with targets) into a
temporary folder, against a fresh database (DATABASE_URL's server, or the embedded Postgres under
.mirage-test-bench/). Figures:
  * apply of N creates: the apply transaction (lock, re-read, COPY per table, audit, commit);
  * no-op plan: load + validate YAML, read state, diff, render; in process (best of --repeat) and as a
    fresh `mirage plan` process (wall time and peak RSS, interpreter start included);
  * one-change plan: one field edited in one file;
  * statements sent by plan (reads) and apply (writes) for two sizes: they must not grow with N.
Targets (this machine, 10,000 resources): no-op plan <= 1.5 s and <= 300 MB; one-change plan <= 1.5 s;
applying 10,000 creates <= 10 s; statements independent of N.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402

from mirage.crypto import Keyring, generate_key  # noqa: E402
from mirage.db.scratch import create_database, drop_database  # noqa: E402
from mirage.reconcile.apply import apply_plan  # noqa: E402
from mirage.reconcile.diff import build_plan  # noqa: E402
from mirage.reconcile.render import render_text  # noqa: E402
from mirage.reconcile.service import load_desired  # noqa: E402
from mirage.reconcile.state import read_for  # noqa: E402

TARGETS = {"noop": 1.5, "one_change": 1.5, "apply": 10.0, "rss_mb": 300}
CONTACTS = 300
NUMBERS = 15
CONVERSATIONS = 5


def _tenant(root: Path, t: int) -> None:
    d = root / f"agencia-{t:04d}"
    (d / "conversations").mkdir(parents=True)
    cc = f"{11 + t % 80:02d}"
    (d / "tenant.yaml").write_text(
        f"name: Agência {t}\nplan: pro\ntimezone: America/Sao_Paulo\nlocale: pt-BR\n"
        "settings: {min_delay_ms: 4000, max_delay_ms: 25000, quiet_hours: {start: '22:00', end: '07:00'}}\n"
        "evolution: {base_url: 'http://evolution.bench:8080', api_key: '${BENCH_EVOLUTION_API_KEY}'}\n"
        f"members: [{{email: ops{t}@agencia.bench, role: admin}}]\nviewers: [socio{t}@agencia.bench]\n"
        "defaults:\n  schedule:\n    max_rounds_per_window: 2\n    days:\n"
        "      weekdays: {morning: {start: '08:00', end: '11:30'}, afternoon: {start: '14:00', end: '17:30'}}\n",
        encoding="utf-8",
    )
    personas = "personas:\n" + "".join(
        f"  p{p}: {{name: Persona {p}, style: curto, greetings: {{morning: [Bom dia!]}}, "
        f"phrases: {{comments: [kkkk], questions: [E aí?]}}, emoji_rate: 0.3}}\n"
        for p in range(3)
    )
    (d / "personas.yaml").write_text(personas, encoding="utf-8")
    numbers = "numbers:\n" + "".join(
        f"  n{n}: {{label: Número {n}, number: '+55{cc}9{t:04d}{n:04d}', persona: p{n % 3}}}\n" for n in range(NUMBERS)
    )
    (d / "numbers.yaml").write_text(numbers, encoding="utf-8")
    contacts = "contacts:\n" + "".join(
        f"  - {{number: '+55{cc}8{t:04d}{c:04d}', name: Contato {c}, tags: [{'vip' if c % 4 == 0 else 'base'}]}}\n"
        for c in range(CONTACTS)
    )
    (d / "contacts.yaml").write_text(contacts, encoding="utf-8")
    (d / "outreach.yaml").write_text(
        "policies:\n  vip: {number: n0, daily_limit: 20, targets: [{tag: vip, priority: 5}]}\n", encoding="utf-8"
    )
    for c in range(CONVERSATIONS):
        a, b, x, y = (c * 3) % NUMBERS, (c * 3 + 1) % NUMBERS, (c * 3 + 2) % NUMBERS, (c * 3 + 3) % NUMBERS
        (d / "conversations" / f"c{c}.yaml").write_text(
            f"name: Conversa {c}\nmode: round_robin\n"
            f"participants: [{{number: n{a}, role: starter}}, {{number: n{b}}}, {{number: n{x}}}, {{number: n{y}}}]\n"
            f"pairings: [{{a: n{a}, b: n{b}}}, {{a: n{x}, b: n{y}, starts: either}}]\n"
            "topics: {futebol: {seed: O jogo}, tempo: {seed: O calor}, feira: {seed: A feira}}\n",
            encoding="utf-8",
        )


def generate(root: Path, resources: int) -> int:
    """Write enough tenants for about `resources` rows; returns the number of tenants."""
    per_tenant = 489  # rows one generated tenant plans (counted from the plan: see the printed total)
    tenants = max(1, -(-resources // per_tenant))
    for t in range(tenants):
        _tenant(root, t)
    return tenants


class Counting(psycopg.Cursor):  # type: ignore[type-arg]
    n = 0

    def execute(self, *a: Any, **k: Any) -> Any:
        Counting.n += 1
        return super().execute(*a, **k)

    def executemany(self, *a: Any, **k: Any) -> Any:
        Counting.n += 1
        return super().executemany(*a, **k)

    def copy(self, *a: Any, **k: Any) -> Any:
        Counting.n += 1
        return super().copy(*a, **k)


BENCH_STATE = Path(os.environ.get("MIRAGE_BENCH_STATE_DIR") or ROOT / ".mirage-test-bench")


def fresh_database() -> tuple[str, str]:
    """(server url, url of a new migrated database)."""
    if os.environ.get("DATABASE_URL"):
        server = os.environ["DATABASE_URL"]
    else:
        from mirage.embedded import ensure_postgres

        server = ensure_postgres(BENCH_STATE)
    return server, create_database(server, f"mirage_bench_{uuid.uuid4().hex[:8]}")


def drop(server: str, url: str) -> None:
    drop_database(server, conninfo_to_dict(url)["dbname"])


PHASES: dict[str, float] = {}


def timed_plan(url: str, root: Path) -> tuple[float, Any, Any, int]:
    """(seconds, plan, desired, statements) for load + read + diff + render, in process."""
    t0 = time.perf_counter()
    desired = load_desired(root, None)
    t1 = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.cursor_factory = Counting
        Counting.n = 0
        actual = read_for(conn, desired)
        statements = Counting.n
    t2 = time.perf_counter()
    plan = build_plan(desired, actual)
    t3 = time.perf_counter()
    render_text(plan)
    t4 = time.perf_counter()
    PHASES.update(load=t1 - t0, read=t2 - t1, diff=t3 - t2, render=t4 - t3)
    return t4 - t0, plan, desired, statements


def run(resources: int, repeat: int, tmp: Path) -> dict[str, Any]:
    root = tmp / f"tenants-{resources}"
    tenants = generate(root, resources)
    server, url = fresh_database()
    ring = Keyring((generate_key(),))
    try:
        _, plan, desired, reads = timed_plan(url, root)
        n = plan.summary.add
        with psycopg.connect(url) as conn:
            conn.cursor_factory = Counting
            Counting.n = 0
            started = time.perf_counter()
            apply_plan(plan, conn, desired, ring=ring, enqueue=None, actor="bench")
            apply_s = time.perf_counter() - started
            writes = Counting.n
        noop, phases = float("inf"), dict(PHASES)
        for _ in range(repeat):
            seconds = timed_plan(url, root)[0]
            if seconds < noop:
                noop, phases = seconds, dict(PHASES)
        env = {**os.environ, "DATABASE_URL": url, "MIRAGE_LOG_LEVEL": "WARNING"}
        cmd = [sys.executable, "-m", "mirage", "plan", str(root), "--detailed-exitcode"]
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        process_s = time.perf_counter() - started
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode != 0:
            raise SystemExit(f"no-op `mirage plan` exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr}")
        numbers = root / "agencia-0000" / "numbers.yaml"
        numbers.write_text(numbers.read_text().replace("label: Número 3,", "label: Número três,"), encoding="utf-8")
        one = []
        for _ in range(repeat):
            seconds, changed, _, _ = timed_plan(url, root)
            one.append(seconds)
        assert changed.summary.change == 1, changed.summary
        return {
            "resources": n,
            "tenants": tenants,
            "apply_s": apply_s,
            "noop_s": noop,
            "process_s": process_s,
            "rss_mb": rss_mb,
            "one_change_s": min(one),
            "reads": reads,
            "writes": writes,
            "phases": phases,
        }
    finally:
        drop(server, url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resources", type=int, default=10_000, help="rows to generate (the target size)")
    ap.add_argument("--small", type=int, default=2_000, help="a second, smaller size to compare statement counts")
    ap.add_argument("--repeat", type=int, default=3, help="plans timed per figure (best kept)")
    args = ap.parse_args()
    os.environ.setdefault("BENCH_EVOLUTION_API_KEY", "bench-evolution-key-000")
    from mirage.embedded import stopped_after

    # the benchmark's own Postgres (unless DATABASE_URL is set) stops when it is done, if it started it
    with tempfile.TemporaryDirectory(prefix="mirage-bench-") as tmp, stopped_after(BENCH_STATE):
        small = run(args.small, args.repeat, Path(tmp))
        big = run(args.resources, args.repeat, Path(tmp))

    def ok(value: float, target: float) -> str:
        return "ok" if value <= target else "MISSED"

    print(
        f"resources: {big['resources']:,} rows in {big['tenants']} tenants (and {small['resources']:,} for comparison)"
    )
    print(
        f"apply {big['resources']:,} creates:   {big['apply_s']:6.2f} s   target <= {TARGETS['apply']} s   "
        f"{ok(big['apply_s'], TARGETS['apply'])}"
    )
    print(
        f"no-op plan (in process):  {big['noop_s']:6.2f} s   target <= {TARGETS['noop']} s   "
        f"{ok(big['noop_s'], TARGETS['noop'])}"
    )
    ph = big["phases"]
    print(
        f"  of which: load + validate YAML {ph['load']:.2f} s, read rows {ph['read']:.2f} s, "
        f"diff {ph['diff']:.2f} s, render {ph['render']:.2f} s"
    )
    print(f"no-op `mirage plan` run:  {big['process_s']:6.2f} s   (fresh process, interpreter start included)")
    print(
        f"peak memory (that run):   {big['rss_mb']:6.0f} MB  target <= {TARGETS['rss_mb']} MB  "
        f"{ok(big['rss_mb'], TARGETS['rss_mb'])}"
    )
    print(
        f"one-change plan:          {big['one_change_s']:6.2f} s   target <= {TARGETS['one_change']} s   "
        f"{ok(big['one_change_s'], TARGETS['one_change'])}"
    )
    same = small["reads"] == big["reads"] and small["writes"] == big["writes"]
    print(
        f"SQL statements, plan:     {small['reads']} for {small['resources']:,} rows, "
        f"{big['reads']} for {big['resources']:,} rows (one per table, sent in one pipeline)"
    )
    print(
        f"SQL statements, apply:    {small['writes']} for {small['resources']:,} creates, "
        f"{big['writes']} for {big['resources']:,} creates   {'ok: independent of N' if same else 'GREW WITH N'}"
    )


if __name__ == "__main__":
    main()
