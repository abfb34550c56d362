"""Load + validate N agency-size tenants; print the time and peak memory next to the target.

    .venv/bin/python bench/config.py [--tenants 1000] [--repeat 3] [--tracemalloc]

Each generated tenant is a copy of tenants.d/agencia-aurora (12 numbers, 2 personas, 3 conversations with
schedules and topics, contacts, an outreach policy) with its own phone numbers. Timing covers
`load_fleet()` only (one process): reading, YAML, validation, cross-checks and resolution, on a warm page
cache. CPU time is printed too: on a shared machine the wall time also measures the neighbours.
Target: 1,000 tenants in <= 3 s on the 2-core CI machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mirage.config import load_fleet  # noqa: E402
from mirage.config.yamlsource import LIBYAML  # noqa: E402

TARGET_SECONDS = 3.0
TARGET_TENANTS = 1000
EXAMPLE = ROOT / "tenants.d" / "agencia-aurora"


def generate(root: Path, n: int) -> int:
    """Write n tenants under root; returns the bytes written per tenant."""
    files = {p.relative_to(EXAMPLE): p.read_text(encoding="utf-8") for p in EXAMPLE.rglob("*") if p.is_file()}
    size = 0
    for i in range(n):
        folder = root / f"agencia-{i:05d}"
        for rel, text in files.items():
            # Give every tenant its own numbers (one WhatsApp number belongs to one tenant): the country code 55
            # becomes a 4-digit code unique to the tenant, +5511976540101 -> +<1000+i>11976540101, still E.164.
            body = text.replace("+55", f"+{1000 + i}")
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
            size += len(body.encode()) if i == 0 else 0
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tenants", type=int, default=TARGET_TENANTS, help="how many tenants to generate (at most 9000)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs; the best is reported")
    ap.add_argument("--tracemalloc", action="store_true", help="also measure Python allocations (slower run)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mirage-bench-config-"))
    try:
        per_tenant = generate(tmp, args.tenants)
        load_fleet(tmp)  # warm the page cache and imports
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        times, cpu, loads = [], [], []
        for _ in range(args.repeat):
            gc.collect()
            loads.append(os.getloadavg()[0])
            t0, c0 = time.perf_counter(), time.process_time()
            fleet = load_fleet(tmp)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            del fleet
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        best = min(times)
        at = times.index(best)
        scaled = best * TARGET_TENANTS / args.tenants
        verdict = "ok" if scaled <= TARGET_SECONDS else "MISSED"
        print(
            f"config bench: {args.tenants} agency tenants ({per_tenant / 1024:.1f} KiB of YAML each), "
            f"libyaml={'yes' if LIBYAML else 'no'}, one process, {os.cpu_count()} CPUs"
        )
        print(
            f"  load+validate: best {best:.2f} s of {args.repeat} (runs {', '.join(f'{t:.2f}' for t in times)}), "
            f"{best / args.tenants * 1000:.2f} ms/tenant; CPU time {cpu[at]:.2f} s"
        )
        print(
            f"  target: {TARGET_TENANTS} tenants <= {TARGET_SECONDS:.1f} s -> {scaled:.2f} s [{verdict}] "
            f"(load average {loads[at]:.1f} before that run: other work on the machine inflates wall time)"
        )
        print(
            f"  peak RSS of the process: {rss_after / 1024:.0f} MiB (before the timed runs {rss_before / 1024:.0f} MiB)"
        )
        if args.tracemalloc:
            gc.collect()
            tracemalloc.start()
            fleet = load_fleet(tmp)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"  tracemalloc peak during one load: {peak / 2**20:.0f} MiB "
                f"({peak / args.tenants / 1024:.0f} KiB/tenant, models and kept texts included)"
            )
            del fleet
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
