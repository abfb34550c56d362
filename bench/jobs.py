"""What rq costs the worker around each job: CPU and Redis round trips per trivial job.

    .venv/bin/python bench/jobs.py [--jobs 3000] [--threads 1,4] [--runs 3] [--chain] [--profile FILE]

Enqueues --jobs trivial jobs the way the runtime does (`enqueue_unique`: a unique id, retries, log context, a
result kept an hour) and runs them with `run_worker(threads=N, scheduler=False)` on every queue in this process
(as `mirage worker` does, blocking dequeues; a SIGTERM stops it once the last job has finished); prints, per
thread count, the median over --runs of the worker's CPU per job (process time, every thread) and its Redis
round trips and commands per job. The job itself does nothing, so the figures are rq's
loop, Mirage's worker classes and redis-py. `--chain`: each job enqueues one more job (`enqueue_unique`), as
most runtime jobs do, so enqueueing is counted too. Redis: REDIS_URL, else the embedded one under
.mirage-test-bench-jobs/ (flushed before each run: never point REDIS_URL at a Redis you need; the embedded one is
stopped at the end if the bench started it).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# its own embedded Redis (flushed before each run), never the one bench/engine.py may be using
STATE = Path(os.environ.get("MIRAGE_BENCH_JOBS_STATE_DIR") or ROOT / ".mirage-test-bench-jobs")
os.environ["MIRAGE_STATE_DIR"] = str(STATE)

import redis as redis_lib  # noqa: E402
from redis.connection import AbstractConnection  # noqa: E402

from mirage.backends import redis_client  # noqa: E402
from mirage.embedded.redis import redis_running, stop_redis  # noqa: E402
from mirage.jobs import queues  # noqa: E402
from mirage.jobs.worker import run_worker  # noqa: E402
from mirage.logs import configure_logging  # noqa: E402

# Targets: a trivial job's CPU in the worker (rq 3.0's own loop costs about 2.7 ms with one thread, 3.0 with four)
# and its Redis round trips (rq's own loop: 21; ADR 0062: 10.6).
TARGETS = {"cpu_ms": 1.5, "round_trips": 8.0}


def noop() -> str:
    return "ok"


def chain(i: int) -> str:
    """Enqueue the next job under its own id, as a runtime job enqueues its follow-up."""
    queues.enqueue_unique(queues.ROUNDS, f"{__name__}.noop", job_id=f"next:{i}")
    return "ok"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def line(name: str, value: str, target: str, ok: bool) -> None:
    print(f"  {name:<44} {value:>14}   target {target:<14} {verdict(ok)}")


class Counter:
    """Redis round trips sent by this process (every client), counted at redis-py's connection."""

    def __init__(self) -> None:
        self.n = 0
        self._original = AbstractConnection.send_packed_command

    def __enter__(self) -> Counter:
        counter, original = self, self._original

        def send(conn: AbstractConnection, command: Any, check_health: bool = True) -> None:
            counter.n += 1
            original(conn, command, check_health)

        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        AbstractConnection.send_packed_command = self._original  # type: ignore[method-assign]


def commands(r: redis_lib.Redis) -> int:
    return int(r.info("stats")["total_commands_processed"])


def one_run(r: redis_lib.Redis, jobs: int, threads: int, *, chained: bool) -> dict[str, float]:
    """`jobs` jobs (half on the rounds queue, half on the messages queue) through a worker on every queue, as
    `mirage worker` runs (blocking dequeues); measured until the last job is in the finished registries."""
    r.flushdb()
    func = f"{__name__}.chain" if chained else f"{__name__}.noop"
    with queues.kept_connections():
        for i in range(jobs):
            name = (queues.ROUNDS, queues.MESSAGES)[i % 2]
            queues.enqueue_unique(name, func, job_id=f"bench:{i}", args=[i] if chained else [], conn=r)
    done = jobs * (2 if chained else 1)
    finished = [f"rq:finished:{name}" for name in queues.ALL_QUEUES]
    at_end: dict[str, float] = {}

    def watch() -> None:
        """Stop the worker (SIGTERM: a warm stop) once every job has finished; note the figures then."""
        polls = 0
        with redis_client() as w:
            while True:
                polls += 1
                with w.pipeline(transaction=False) as p:
                    for key in finished:
                        p.zcard(key)
                    if sum(int(n) for n in p.execute()) >= done:
                        break
                time.sleep(0.05)
        at_end.update(
            cpu=time.process_time(), wall=time.perf_counter(), sent=counter.n - polls, cmds=commands(r) - 4 * polls
        )
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=watch, daemon=True)
    with Counter() as counter:
        cmds, cpu, wall = commands(r), time.process_time(), time.perf_counter()
        watcher.start()
        run_worker((), burst=False, scheduler=False, connection=r, threads=threads)
    watcher.join()
    return {
        "cpu_ms": (at_end["cpu"] - cpu) * 1000 / done,
        "wall_ms": (at_end["wall"] - wall) * 1000 / done,
        "round_trips": at_end["sent"] / done,
        "commands": (at_end["cmds"] - cmds - 1) / done,  # less the INFO itself
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--threads", default="1,4", help="thread counts, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chain", action="store_true", help="each job enqueues one more")
    parser.add_argument("--profile", type=Path, help="cProfile the last run into this file")
    args = parser.parse_args()
    # as `mirage worker` logs (rq.worker at WARNING), into a stream kept open for the process
    configure_logging("INFO", "json", open(os.devnull, "w"))  # noqa: SIM115
    started = "REDIS_URL" not in os.environ and redis_running(STATE) is None
    r = redis_client()
    one_run(r, 200, 1, chained=args.chain)  # warm up: imports, the worker's preload
    what = f"{args.jobs} trivial jobs{' (each enqueueing one)' if args.chain else ''}"
    print(f"bench/jobs.py: {what}, median of {args.runs}, load {os.getloadavg()[0]:.1f}")
    for threads in (int(t) for t in args.threads.split(",")):
        runs = [one_run(r, args.jobs, threads, chained=args.chain) for _ in range(args.runs)]
        med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        spread = ", ".join(f"{run['cpu_ms']:.2f}" for run in runs)
        line(
            f"threads={threads}: worker CPU per job ({spread})",
            f"{med['cpu_ms']:.2f} ms",
            f"<= {TARGETS['cpu_ms']} ms",
            med["cpu_ms"] <= TARGETS["cpu_ms"],
        )
        line(
            f"threads={threads}: Redis round trips per job",
            f"{med['round_trips']:.1f}",
            f"<= {TARGETS['round_trips']}",
            med["round_trips"] <= TARGETS["round_trips"],
        )
        print(f"  {f'threads={threads}: Redis commands per job (information)':<44} {med['commands']:>14.1f}")
        print(f"  {f'threads={threads}: wall per job (information)':<44} {med['wall_ms']:>11.2f} ms")
    if args.profile:
        import cProfile

        cProfile.runctx(
            "one_run(r, args.jobs, 1, chained=args.chain)", globals(), {"r": r, "args": args}, str(args.profile)
        )
    r.close()
    if started:
        stop_redis(STATE, save=False)


if __name__ == "__main__":
    main()
