"""`mirage simulate` speed: a week of the example tenants, and a fleet of generated agency tenants.

    .venv/bin/python bench/simulate.py [--days 7] [--fleet-tenants 4] [--fleet-days 1] [--full]
                                       [--skip-examples | --skip-fleet]

Postgres: DATABASE_URL's server, else the embedded one under .mirage-test-bench/ (each run makes and drops
its own scratch database); Redis: the simulation's private embedded server. Each simulation runs in a child
process, so its peak RSS is its own. Figures, each with the load average (1 min) before and after the run:
  * the two example tenants (14 numbers) for --days virtual days: wall time (target <= 60 s for 7 days);
  * a fleet of --fleet-tenants generated agency tenants (15 numbers and 5 conversations each) for
    --fleet-days: wall time and the child's peak RSS. The issue's fleet is 100 tenants (1,500 numbers) for
    7 days, aiming at <= 15 min and <= 1 GB; `--full` runs exactly that. A smaller run is labelled SCALED
    DOWN, and its figures are extrapolated to the issue's fleet (labelled EXTRAPOLATED): setup linear in
    tenants; the rest linear in tenants and working days (Mon-Fri; the agencies' weekends are off and cost only
    idle ticks); memory linear in messages above the examples' baseline.
Peak RSS and CPU are the child's (driver, webhook service, simulator); Postgres and Redis are separate processes.
CPU time moves less with the load than wall time: compare it when other work shares the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mirage.settings import get_settings  # noqa: E402

BENCH_STATE = Path(os.environ.get("MIRAGE_BENCH_STATE_DIR") or ROOT / ".mirage-test-bench")
START = date(2026, 12, 7)  # a Monday
EXAMPLES_TARGET_S = 60.0
FLEET = {"tenants": 100, "days": 7, "seconds": 15 * 60, "rss_mb": 1024}
NUMBERS = 15
CONVERSATIONS = 5


def agency(root: Path, t: int) -> None:
    """One generated agency tenant: 15 numbers, 3 personas, 5 round-robin conversations of 4 numbers. Numbers end
    in 0001-0015: the simulator treats a number ending in seven zeros as not on WhatsApp."""
    d = root / f"agencia-{t:04d}"
    (d / "conversations").mkdir(parents=True)
    cc = f"{11 + t % 80:02d}"
    (d / "tenant.yaml").write_text(
        f"name: Agência {t}\nplan: agency\ntimezone: America/Sao_Paulo\nlocale: pt-BR\n"
        "settings: {min_delay_ms: 4000, max_delay_ms: 25000, hourly_burst_limit: 20, daily_limit: 120,\n"
        "  quiet_hours: {start: '22:00', end: '07:00'}, humanize: true, allow_bot_to_bot: true}\n"
        "evolution: {base_url: '${EVOLUTION_BASE_URL}', api_key: '${EVOLUTION_API_KEY}'}\n"
        "defaults:\n  schedule:\n    max_rounds_per_window: 2\n    pause_between_rounds: {min: 25, max: 70}\n"
        "    days:\n      weekdays:\n        morning: {start: '08:00', end: '11:30'}\n"
        "        afternoon: {start: '14:00', end: '17:30'}\n"
        "      sat: off\n      sun: off\n",
        encoding="utf-8",
    )
    personas = "personas:\n" + "".join(
        f"  p{p}: {{name: Persona {p}, style: curto, greetings: {{morning: [Bom dia!, Bom diaaa!, Opa, bom dia!], "
        f"afternoon: [Boa tarde!, E aí, boa tarde!]}}, phrases: {{comments: [Que calor, Choveu aqui, Fiz bolo], "
        f"questions: [E aí?, Tudo certo?, E a família?], answers: [Tudo sim, Tudo em paz, Melhor agora], "
        f"goodbyes: [Abraço!, Fica com Deus, Até mais]}}, emoji_rate: 0.3}}\n"
        for p in range(3)
    )
    (d / "personas.yaml").write_text(personas, encoding="utf-8")
    numbers = "numbers:\n" + "".join(
        f"  n{n}: {{label: Número {n}, number: '+55{cc}9{t:04d}{n + 1:04d}', persona: p{n % 3}, "
        f"warmup_started_on: 2026-06-01}}\n"
        for n in range(NUMBERS)
    )
    (d / "numbers.yaml").write_text(numbers, encoding="utf-8")
    for c in range(CONVERSATIONS):
        a, b, x, y = (c * 3) % NUMBERS, (c * 3 + 1) % NUMBERS, (c * 3 + 2) % NUMBERS, (c * 3 + 3) % NUMBERS
        (d / "conversations" / f"c{c}.yaml").write_text(
            f"name: Conversa {c}\nmode: round_robin\nexchanges: {{min: 2, max: 3}}\n"
            f"participants: [{{number: n{a}, role: starter}}, {{number: n{b}}}, {{number: n{x}}}, {{number: n{y}}}]\n"
            f"pairings: [{{a: n{a}, b: n{b}}}, {{a: n{x}, b: n{y}, starts: either}}]\n"
            "topics: {futebol: {seed: O jogo}, tempo: {seed: O calor}, feira: {seed: A feira}}\n",
            encoding="utf-8",
        )


def weekdays(days: int) -> int:
    """Working days (Mon-Fri) among the `days` days from START."""
    return sum(1 for d in range(days) if (START + timedelta(days=d)).weekday() < 5)


def child(root: Path, days: int, label: str) -> None:
    """One simulation in this (child) process; prints its figures as one JSON line on stdout."""
    from mirage.simulation.session import SimulationOptions, report_of, simulation

    began = time.monotonic()
    options = SimulationOptions(root, days=days, start=START, seed=42, server=os.environ.get("DATABASE_URL") or None)
    with simulation(options, lambda line: print(f"  [{label}] {line}", file=sys.stderr, flush=True)) as run:
        report = report_of(run)
        setup = run.setup_s
    seconds = time.monotonic() - began
    if report.violations:
        print(f"  [{label}] {report.violations} compliance violation(s)", file=sys.stderr)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures = {
        "seconds": seconds,
        "setup_s": setup,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "sent": int(report.stats["sent"]),
        "jobs": report.stats["driver"]["jobs"],
        "events": report.stats["driver"]["events"],
    }
    print(json.dumps(figures), flush=True)


def timed(root: Path, days: int, label: str) -> dict[str, float]:
    """Run one simulation in a child process; its figures with the load average before and after."""
    before = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(root), "--child-days", str(days), "--child-label", label],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    figures["load_before"], figures["load_after"] = before, os.getloadavg()[0]
    return figures


def load(f: dict[str, float]) -> str:
    return f"load {f['load_before']:.1f}->{f['load_after']:.1f}"


def run_note(f: dict[str, float]) -> str:
    """A run's note: load, setup, the child's CPU, jobs and simulator events."""
    return (
        f"{load(f)}; setup {f['setup_s']:.1f} s; CPU {f['cpu_s']:.1f} s; "
        f"{f['jobs']:.0f} jobs, {f['events']:.0f} simulator events"
    )


def line(figure: str, value: str, target: str, ok: bool | None, note: str = "") -> None:
    verdict = "n/a" if ok is None else ("ok" if ok else "MISSED")
    print(f"{figure:<66} {value:>10}  {target:<8} {verdict:<7} {note}".rstrip(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7, help="days of the example tenants (target: 7 in 60 s)")
    parser.add_argument("--fleet-tenants", type=int, default=4, help="generated agency tenants (scaled run)")
    parser.add_argument("--fleet-days", type=int, default=1, help="days of the fleet (scaled run)")
    parser.add_argument("--full", action="store_true", help="the issue's fleet: 100 tenants, 7 days")
    parser.add_argument("--skip-examples", action="store_true", help="only the fleet")
    parser.add_argument("--skip-fleet", action="store_true", help="only the examples")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-days", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-label", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        os.environ.setdefault("MIRAGE_STATE_DIR", str(BENCH_STATE))
    os.environ.setdefault("MIRAGE_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    if args.child is not None:
        child(args.child, args.child_days, args.child_label)
        return

    baseline_mb = 0.0
    if not args.skip_examples:
        f = timed(ROOT / "tenants.d", args.days, "examples")
        baseline_mb = f["rss_mb"]
        scaled = args.days != 7
        line(
            f"examples: {args.days} day(s), 14 numbers, {f['sent']:.0f} messages (wall s)",
            f"{f['seconds']:.1f}",
            "<= 60" if not scaled else "n/a",
            None if scaled else f["seconds"] <= EXAMPLES_TARGET_S,
            run_note(f),
        )
        line("  peak RSS of the simulation process (MB)", f"{f['rss_mb']:.0f}", "n/a", None, load(f))
    if args.skip_fleet:
        return
    tenants, days = (FLEET["tenants"], FLEET["days"]) if args.full else (args.fleet_tenants, args.fleet_days)
    full = tenants == FLEET["tenants"] and days == FLEET["days"]
    folder = Path(tempfile.mkdtemp(prefix="mirage-bench-sim-"))
    try:
        for t in range(tenants):
            agency(folder, t)
        f = timed(folder, days, "fleet")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    label = f"fleet: {tenants} tenants, {tenants * NUMBERS} numbers, {days} day(s), {f['sent']:.0f} messages"
    if not full:
        label += " [SCALED DOWN]"
    line(
        f"{label} (wall s)",
        f"{f['seconds']:.1f}",
        "<= 900" if full else "n/a",
        f["seconds"] <= FLEET["seconds"] if full else None,
        run_note(f),
    )
    line(
        "  peak RSS of the simulation process (MB)",
        f"{f['rss_mb']:.0f}",
        "<= 1024" if full else "n/a",
        f["rss_mb"] <= FLEET["rss_mb"] if full else None,
        load(f),
    )
    if full:
        return
    # The issue's fleet from this run (see the module docstring): labelled, never a measurement.
    scale = FLEET["tenants"] / tenants
    work = weekdays(FLEET["days"]) / max(1, weekdays(days))
    seconds = f["setup_s"] * scale + (f["seconds"] - f["setup_s"]) * scale * work
    base = baseline_mb or min(f["rss_mb"], 120.0)
    rss = base + max(0.0, f["rss_mb"] - base) * scale * work
    line(
        f"fleet: 100 tenants, 1,500 numbers, 7 days [EXTRAPOLATED from {tenants} x {days}] (wall s)",
        f"{seconds:.0f}",
        "<= 900",
        seconds <= FLEET["seconds"],
        "extrapolated, not measured",
    )
    line(
        "  peak RSS [EXTRAPOLATED] (MB)",
        f"{rss:.0f}",
        "<= 1024",
        rss <= FLEET["rss_mb"],
        "extrapolated, not measured",
    )
    print("  the issue's fleet (100 tenants, 1,500 numbers, 7 days) is `--full`; not run by `make bench`")


if __name__ == "__main__":
    main()
