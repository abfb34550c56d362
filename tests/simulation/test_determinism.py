"""The same seed gives the same transcript for generated agency tenants too (issue 15): every order the runtime
decides in comes from configuration keys (ADR 0060), never from random row ids, so two scratch databases that get
different ids run the same history."""

from __future__ import annotations

import hashlib
import sys
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from simulate import agency  # noqa: E402  (bench/simulate.py: the benchmark's generated agency tenant)


def test_two_generated_agency_tenants_give_the_same_transcript_twice_on_fresh_databases(
    server_url: str, tmp_path: Path
) -> None:
    from mirage.simulation.session import SimulationOptions, report_of, simulation

    root = tmp_path / "tenants.d"
    for t in range(2):
        agency(root, t)
    # Midnight to 09:30 in São Paulo: setup, then the first window's rounds (round_robin over two pairings each).
    options = SimulationOptions(
        root, days=1, start=date(2026, 12, 7), seed=42, server=server_url, span=timedelta(hours=9, minutes=30)
    )
    transcripts = []
    for _ in range(2):
        with simulation(options) as run:
            report = report_of(run)
        transcripts.append(report.transcript_text)
    assert len(transcripts[0].splitlines()) > 20  # rounds ran in both tenants' conversations
    assert {m["tenant"] for m in report.transcript} == {"agencia-0000", "agencia-0001"}
    first, second = (hashlib.sha256(t.encode("utf-8")).hexdigest() for t in transcripts)
    assert first == second, "\n".join(
        f"{a}\n{b}" for a, b in zip(transcripts[0].splitlines(), transcripts[1].splitlines(), strict=False) if a != b
    )[:3000]
