"""Secrets at rest: only ciphertext in the database, rotation keeps everything readable, rows cannot swap values."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from psycopg import sql

from mirage.cli import cli
from mirage.crypto import CryptoError, generate_key, keyring, secret_hash
from mirage.db import evolution_sessions as store
from mirage.db.connect import connect
from mirage.integrations.evolution_sim import SimHandle
from mirage.jobs import lifecycle
from mirage.settings import get_settings
from tests.evolution.helpers import make_number, make_tenant, row

API_KEY = "evolution-global-key-Zq81"


def provisioned(db: psycopg.Connection[Any], sim: SimHandle, *numbers: tuple[str, str]) -> list[store.Session]:
    """Provision numbers (key, phone) of tenant acme against the simulator; returns their sessions, decrypted."""
    tenant = make_tenant(db, base_url=sim.url, api_key=sim.api_key)
    sessions = []
    with connect() as conn:
        for key, phone in numbers:
            number_id = make_number(db, tenant, key, phone)
            lifecycle.provision(conn, number_id)
            session = store.live_session(conn, number_id)
            assert session is not None
            sessions.append(session)
    return sessions


def database_text(db: psycopg.Connection[Any]) -> str:
    """Every row of every public table as text (bytea shows as hex): what a dump would contain."""
    db.commit()
    tables = [r["tablename"] for r in db.execute("select tablename from pg_tables where schemaname = 'public'")]
    parts = []
    for table in tables:
        query = sql.SQL("select t::text as line from {} t").format(sql.Identifier(table))
        parts += [r["line"] for r in db.execute(query)]
    db.commit()
    return "\n".join(parts)


def ciphertexts(db: psycopg.Connection[Any]) -> dict[str, bytes]:
    db.commit()
    out: dict[str, bytes] = {}
    for r in db.execute("select id, token_enc, webhook_secret_enc, jwt_key_enc, last_qr_enc from t_sessions"):
        out |= {f"{r['id']}.{k}": bytes(v) for k, v in r.items() if k.endswith("_enc") and v is not None}
    for r in db.execute("select id, value_enc from t_tenant_secrets"):
        out[f"{r['id']}.value"] = bytes(r["value_enc"])
    db.commit()
    return out


def use_keys(monkeypatch: pytest.MonkeyPatch, *keys: str) -> None:
    monkeypatch.setenv("MIRAGE_SECRET_KEYS", ",".join(keys))
    get_settings.cache_clear()


def test_the_database_holds_only_ciphertext_for_tokens_and_secrets(
    db: psycopg.Connection[Any], sim: SimHandle, public_url: str
) -> None:
    [session] = provisioned(db, sim, ("sales", "+5511912345678"))
    qr = sim.world.instances[session.instance_name].qr_code
    dump = database_text(db)
    secrets = {
        "token": session.token,
        "webhook_secret": session.webhook_secret,
        "jwt_key": session.jwt_key,
        "api_key": sim.api_key,
        "qr": qr,
    }
    for name, value in secrets.items():
        assert value, name
        assert value not in dump, name
        assert value.encode().hex() not in dump, name  # not even as bytea hex
    assert row(db, "select token_hash from t_sessions")["token_hash"] == secret_hash(session.token or "")
    assert all(blob.startswith(b"gAAAAA") for blob in ciphertexts(db).values())  # Fernet tokens


def test_rotation_re_encrypts_everything_under_the_new_key_and_keeps_it_readable(
    db: psycopg.Connection[Any], sim: SimHandle, public_url: str, secret_keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = provisioned(db, sim, ("sales", "+5511912345678"), ("support", "+5511987654321"))
    before = ciphertexts(db)
    new_key = generate_key()
    use_keys(monkeypatch, new_key, secret_keys)
    result = CliRunner().invoke(cli, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "t_sessions: 2 row(s), 8 value(s) re-encrypted" in result.stdout
    assert "t_tenant_secrets: 1 row(s), 1 value(s) re-encrypted" in result.stdout
    after = ciphertexts(db)
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in before)
    use_keys(monkeypatch, new_key)  # the old key is gone: everything must still decrypt
    with connect() as conn:
        for old in sessions:
            again = store.load_session(conn, old.id)
            assert again is not None
            assert (again.token, again.webhook_secret, again.jwt_key) == (old.token, old.webhook_secret, old.jwt_key)
        assert store.evolution_access(conn, old.tenant_id).api_key == sim.api_key
    use_keys(monkeypatch, secret_keys)  # and the old key alone no longer reads anything
    with connect() as conn, pytest.raises(CryptoError):
        store.load_session(conn, sessions[0].id)


def test_a_rotation_dry_run_changes_nothing(
    db: psycopg.Connection[Any], sim: SimHandle, public_url: str, secret_keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    provisioned(db, sim, ("sales", "+5511912345678"))
    before = ciphertexts(db)
    use_keys(monkeypatch, generate_key(), secret_keys)
    result = CliRunner().invoke(cli, ["keys", "rotate", "--dry-run"])
    assert result.exit_code == 0 and "Dry run: 5 value(s)" in result.stdout
    assert ciphertexts(db) == before


def test_rotation_is_a_domain_function_the_cli_only_renders(
    db: psycopg.Connection[Any], sim: SimHandle, public_url: str, secret_keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mirage keys rotate` is a thin shell: the same rotation runs without it, from mirage.db.keys."""
    from mirage.crypto import keyring
    from mirage.db.keys import rotate_all

    provisioned(db, sim, ("sales", "+5511912345678"))
    before = ciphertexts(db)
    use_keys(monkeypatch, generate_key(), secret_keys)
    with connect() as conn:
        results = rotate_all(conn, keyring())
    assert {r.table: r.values for r in results if r.values} == {"t_sessions": 4, "t_tenant_secrets": 1}
    after = ciphertexts(db)
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in before)


def test_a_ciphertext_moved_to_another_row_fails_to_decrypt_and_stops_rotation(
    db: psycopg.Connection[Any], sim: SimHandle, public_url: str, secret_keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = provisioned(db, sim, ("sales", "+5511912345678"), ("support", "+5511987654321"))
    db.execute(
        "update t_sessions set token_enc = (select token_enc from t_sessions where id = %s) where id = %s", (a.id, b.id)
    )
    db.commit()
    with connect() as conn, pytest.raises(CryptoError, match="belongs to another row"):
        store.load_session(conn, b.id)
    enc = row(db, "select webhook_secret_enc from t_sessions where id = %s", a.id)["webhook_secret_enc"]
    with pytest.raises(CryptoError):  # same row, another field: also refused
        keyring().decrypt(enc, table="t_sessions", row_id=a.id, field="token")
    before = ciphertexts(db)
    use_keys(monkeypatch, generate_key(), secret_keys)
    result = CliRunner().invoke(cli, ["keys", "rotate"])
    assert result.exit_code == 1 and "belongs to another row" in result.output
    assert ciphertexts(db) == before  # one transaction: nothing rotated


def test_keys_generate_prints_a_fernet_key_and_how_to_prepend_it() -> None:
    result = CliRunner().invoke(cli, ["keys", "generate"])
    key = result.stdout.strip()
    assert result.exit_code == 0 and Fernet(key.encode())
    assert 'MIRAGE_SECRET_KEYS="<new key>,$MIRAGE_SECRET_KEYS"' in result.stderr
    assert "mirage keys rotate" in result.stderr


def test_keys_generate_write_local_prepends_to_the_embedded_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIRAGE_SECRET_KEYS")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for _ in range(2):
        result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path), "keys", "generate", "--write-local"])
        assert result.exit_code == 0, result.output
    keys = (tmp_path / "secret_keys").read_text().strip().split(",")
    assert len(keys) == 2 and all(Fernet(k.encode()) for k in keys)
    assert oct((tmp_path / "secret_keys").stat().st_mode & 0o777) == "0o600"


def test_keys_generate_write_local_refuses_when_keys_come_from_the_environment() -> None:
    result = CliRunner().invoke(cli, ["keys", "generate", "--write-local"])
    assert result.exit_code == 1 and "MIRAGE_SECRET_KEYS is set" in result.output


def test_a_value_encrypted_for_one_session_id_does_not_decrypt_for_another() -> None:
    ring = keyring()
    blob = ring.encrypt("token-value-123", table="t_sessions", row_id=uuid.uuid4(), field="token")
    with pytest.raises(CryptoError):
        ring.decrypt(blob, table="t_sessions", row_id=uuid.uuid4(), field="token")


def test_debug_logs_never_carry_a_token_secret_or_key(
    db: psycopg.Connection[Any],
    sim: SimHandle,
    public_url: str,
    secret_keys: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    [session] = provisioned(db, sim, ("sales", "+5511912345678"))
    sim.scan(session.instance_name, "+5511912345678")
    with connect() as conn:
        lifecycle.refresh(conn, session.id)
        lifecycle.provision(conn, session.number_id)  # type: ignore[arg-type]
        lifecycle.deprovision(conn, session.id)
    secrets = [session.token, session.webhook_secret, session.jwt_key, sim.api_key, secret_keys]
    assert len(caplog.records) > 5
    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        assert not [s for s in secrets if s and s in text], record.getMessage()


def test_a_qr_code_never_shows_in_a_repr() -> None:
    from mirage.integrations.evolution.models import QrCode

    qr = QrCode(code="2@secret-qr-string", base64="data:image/png;base64,AAAA", pairing_code="WZYEH1YY", count=3)
    assert "secret-qr" not in repr(qr) and "WZYEH1YY" not in repr(qr) and "count=3" in repr(qr)


def test_processes_racing_to_create_the_local_key_all_read_the_same_one(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading

    from mirage.crypto import keyring
    from mirage.settings import Settings

    settings = Settings.from_env({"MIRAGE_STATE_DIR": str(tmp_path / "state")})
    keys: list[tuple[str, ...]] = []
    threads = [threading.Thread(target=lambda: keys.append(keyring(settings).keys)) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(set(keys)) == 1 and len(keys) == 8
    key_file = tmp_path / "state" / "secret_keys"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in key_file.parent.iterdir()] == ["secret_keys"]  # no temporary files left
