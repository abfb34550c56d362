"""`mirage connect TENANT/NUMBER` against the simulator: from QR to `open`, and every way it can end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from mirage.cli import cli
from mirage.integrations.evolution_sim import SimHandle
from tests.evolution.helpers import make_number, make_tenant, row

PHONE = "+5511912345678"
NAME = "mirage-acme-sales"


def declare(db: psycopg.Connection[Any], sim: SimHandle) -> None:
    make_number(db, make_tenant(db, base_url=sim.url, api_key=sim.api_key), "sales", PHONE)


def connect(*args: str) -> Result:
    return CliRunner().invoke(cli, [*args[:-1], "connect", args[-1], "--poll", "0.05", "--timeout", "20"])


def test_connect_shows_refreshed_qrs_until_the_phone_scans_then_prints_the_number(
    db: psycopg.Connection[Any], make_sim: Callable[..., SimHandle], public_url: str, tmp_path: Path
) -> None:
    sim = make_sim(qr_interval_s=0.25, scan_after_s=0.9, phones={NAME: PHONE})
    declare(db, sim)
    png = tmp_path / "qr.png"
    result = CliRunner().invoke(cli, ["connect", "acme/sales", "--poll", "0.05", "--timeout", "20", "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert "QR #1;" in result.output and "QR #2;" in result.output  # a new QR replaced the first one
    assert "█" in result.output and f"QR saved to {png}" in result.output
    assert result.output.rstrip().endswith(f"Connected: acme/sales is {PHONE}.")
    assert png.read_bytes().startswith(b"\x89PNG")
    assert png.stat().st_mode & 0o777 == 0o600  # whoever scans it owns the session: owner-only
    number = row(db, "select status::text, connected_at from t_numbers")
    session = row(db, "select state, last_seen, last_qr_enc, instance_name from t_sessions")
    assert number["status"] == "open" and number["connected_at"] is not None
    assert session["state"] == "open" and session["last_seen"] is not None and session["last_qr_enc"] is None
    assert session["instance_name"] == NAME and sim.world.instances[NAME].state == "open"


def test_connect_when_already_open_just_prints_the_number(
    db: psycopg.Connection[Any], make_sim: Callable[..., SimHandle], public_url: str
) -> None:
    sim = make_sim(scan_after_s=0.1, phones={NAME: PHONE})
    declare(db, sim)
    assert connect("acme/sales").exit_code == 0
    again = connect("acme/sales")
    assert again.exit_code == 0 and "QR #" not in again.output and f"is {PHONE}." in again.output


def test_connect_stores_the_latest_qr_encrypted_while_waiting(
    db: psycopg.Connection[Any], make_sim: Callable[..., SimHandle], public_url: str
) -> None:
    sim = make_sim(qr_interval_s=30)
    declare(db, sim)
    result = CliRunner().invoke(cli, ["connect", "acme/sales", "--poll", "0.05", "--timeout", "1"])
    assert (
        result.exit_code == 1 and "No scan within 1 s" in result.output and "mirage connect acme/sales" in result.output
    )
    session = row(db, "select last_qr_enc, qr_count, state from t_sessions")
    assert session["last_qr_enc"] is not None and session["qr_count"] == 1 and session["state"] == "connecting"
    assert sim.world.instances[NAME].qr_code not in bytes(session["last_qr_enc"]).decode()
    assert row(db, "select status::text from t_numbers")["status"] == "qr"


def test_connect_says_when_evolution_gives_up_and_how_to_retry(
    db: psycopg.Connection[Any], make_sim: Callable[..., SimHandle], public_url: str
) -> None:
    sim = make_sim(qr_interval_s=0.1, qr_limit=3, refused_hold_s=0.1)
    declare(db, sim)
    result = connect("acme/sales")
    assert result.exit_code == 2, result.output
    assert "Evolution stopped issuing QR codes" in result.output
    assert "Run `mirage connect acme/sales` again" in result.output
    assert sim.world.instances[NAME].state in ("refused", "close")  # no new QR series was started
    assert row(db, "select status::text from t_numbers")["status"] == "refused"


def test_connect_with_pairing_code_shows_the_code(
    db: psycopg.Connection[Any], make_sim: Callable[..., SimHandle], public_url: str
) -> None:
    sim = make_sim(qr_interval_s=0.1, scan_after_s=0.6)
    declare(db, sim)
    result = CliRunner().invoke(cli, ["connect", "acme/sales", "--pairing-code", "--poll", "0.05"])
    assert result.exit_code == 0, result.output
    code = next(line for line in result.output.splitlines() if line.startswith("Pairing code: "))
    assert len(code.split()[2]) == 8
    assert f"is {PHONE}." in result.output  # the pairing number is the phone that linked


def test_connect_warns_when_another_phone_scanned(
    db: psycopg.Connection[Any], make_sim: Callable[..., SimHandle], public_url: str
) -> None:
    sim = make_sim(scan_after_s=0.2, phones={NAME: "+5511900001111"})
    declare(db, sim)
    result = connect("acme/sales")
    assert result.exit_code == 0
    assert "the phone that linked is +5511900001111, not the declared +5511912345678" in result.output


def test_connect_speaks_portuguese(
    db: psycopg.Connection[Any], make_sim: Callable[..., SimHandle], public_url: str
) -> None:
    sim = make_sim(scan_after_s=0.2, phones={NAME: PHONE})
    declare(db, sim)
    result = connect("--lang", "pt-BR", "acme/sales")
    assert result.exit_code == 0 and f"Conectado: acme/sales é {PHONE}." in result.output
    assert "Escaneie com o WhatsApp" in result.output


@pytest.mark.parametrize(
    ("target", "code", "message"),
    [
        ("acme/ghost", 1, "unknown number acme/ghost"),
        ("acme", 2, "expected TENANT/NUMBER"),
        ("acme/sales/x", 2, "expected TENANT/NUMBER"),
    ],
)
def test_connect_rejects_unknown_or_malformed_targets(
    db: psycopg.Connection[Any], sim: SimHandle, target: str, code: int, message: str
) -> None:
    declare(db, sim)
    result = connect(target)
    assert result.exit_code == code and message in result.output
