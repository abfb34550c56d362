"""How fast the command line starts: fresh `mirage` processes, wall time, best of N, next to the targets.

    .venv/bin/python bench/cli.py [--repeat 7]

Each figure is one new process (interpreter start, imports, the command, exit), as a person or CI runs it:
  * `mirage --version`: the import floor of the CLI (it loads click and nothing else of Mirage's);
  * `mirage validate tenants.d`: the example tenants loaded and validated (pydantic models, YAML), with no
    database, Redis or HTTP client imported;
  * `python -c pass`: the interpreter alone, for scale;
  * `mirage --help` (information, no target): the root help lists every command with its help line, read
    from the command modules' source without importing them (ADR 0043).
Targets (this machine): `mirage --version` <= 150 ms, `mirage validate` of the examples <= 400 ms. The best of
--repeat runs is kept (the others measure the machine's other work; the load average is printed too).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS_MS = {"mirage --version": 150.0, "mirage validate tenants.d": 400.0}
INFORMATION = {
    "python -c pass": "the interpreter alone",
    "mirage --help": "information: the command list is read from source, ADR 0043",
}


def best_ms(argv: list[str], repeat: int) -> float:
    """The fastest of `repeat` fresh runs of `argv`, in ms; a failing run stops the bench."""
    env = {**os.environ, "MIRAGE_DOTENV": "", "MIRAGE_LOG_LEVEL": "WARNING"}
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        elapsed = (time.perf_counter() - started) * 1000
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        best = min(best, elapsed)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="fresh processes per figure (best kept)")
    args = ap.parse_args()
    script = Path(sys.executable).parent / "mirage"  # the console script people run
    mirage = [str(script)] if script.exists() else [sys.executable, "-m", "mirage"]
    figures = {
        "python -c pass": best_ms([sys.executable, "-c", "pass"], args.repeat),
        "mirage --version": best_ms([*mirage, "--version"], args.repeat),
        "mirage validate tenants.d": best_ms([*mirage, "validate", "tenants.d"], args.repeat),
        "mirage --help": best_ms([*mirage, "--help"], args.repeat),
    }
    load = os.getloadavg()[0]
    print(f"CLI start-up, fresh processes, best of {args.repeat}, {os.cpu_count()} CPUs, load average {load:.1f}")
    for name, ms in figures.items():
        target = TARGETS_MS.get(name)
        if target is None:
            note = INFORMATION.get(name, "")
            print(f"  {name:<28} {ms:7.0f} ms   ({note})")
            continue
        print(f"  {name:<28} {ms:7.0f} ms   target <= {target:.0f} ms   {'ok' if ms <= target else 'MISSED'}")


if __name__ == "__main__":
    main()
