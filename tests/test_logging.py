"""Log lines are JSON (or text), carry their context, and never carry a secret."""

from __future__ import annotations

import io
import json
import logging

import pytest

from mirage.logs import configure_logging, log_context, redact_text, register_secret


@pytest.fixture
def stream() -> io.StringIO:
    buf = io.StringIO()
    configure_logging("DEBUG", "json", buf)
    return buf


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_log_lines_are_json_with_context_fields(stream: io.StringIO) -> None:
    with log_context(tenant="acme", job_id="job-1") as cid:
        logging.getLogger("mirage.test").info("hello %s", "world", extra={"number": "+5511999990000"})
    (line,) = _lines(stream)
    assert line["msg"] == "hello world"
    assert line["level"] == "INFO" and line["logger"] == "mirage.test"
    assert line["correlation_id"] == cid and line["tenant"] == "acme" and line["job_id"] == "job-1"
    assert line["number"] == "+5511999990000"
    assert "ts" in line


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("calling evolution with apikey=B6D711FC-DE4D-4FD5-9365-44120E713976", "B6D711FC-DE4D-4FD5-9365-44120E713976"),
        ('{"token": "tok-123456789"}', "tok-123456789"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJhIjoxfQ.sig", "eyJhbGciOiJIUzI1NiJ9.eyJhIjoxfQ.sig"),
        ("db at postgresql://mirage:hunter2pass@db.example.com/mirage", "hunter2pass"),
        ("openai key sk-abcdefghijklmnopqrstuvwx", "sk-abcdefghijklmnopqrstuvwx"),
        ("x-webhook-secret: s3cr3t-value", "s3cr3t-value"),
    ],
)
def test_secret_patterns_in_messages_are_redacted(stream: io.StringIO, message: str, secret: str) -> None:
    logging.getLogger("mirage.test").warning(message)
    text = stream.getvalue()
    assert secret not in text
    assert "[REDACTED]" in text


def test_a_registered_secret_passed_to_a_log_call_is_redacted_everywhere(stream: io.StringIO) -> None:
    secret = "plain-looking-value-9f8e7d"
    register_secret(secret)
    log = logging.getLogger("mirage.test")
    log.info("value is %s", secret, extra={"detail": {"nested": [secret]}, "api_key": "anything"})
    try:
        raise ValueError(f"failed with {secret}")
    except ValueError:
        log.exception("boom")
    text = stream.getvalue()
    assert secret not in text
    lines = _lines(stream)
    assert lines[0]["api_key"] == "[REDACTED]"
    assert lines[0]["detail"] == {"nested": ["[REDACTED]"]}
    assert "ValueError" in str(lines[1]["exc"])


def test_text_format_is_one_readable_line() -> None:
    buf = io.StringIO()
    configure_logging("INFO", "text", buf)
    with log_context("abc123", tenant="acme"):
        logging.getLogger("mirage.test").info("ready")
    line = buf.getvalue().strip()
    assert "INFO" in line and "mirage.test: ready" in line and "cid=abc123" in line and "tenant=acme" in line


def test_redact_text_leaves_ordinary_text_alone() -> None:
    assert redact_text("Bom dia, tudo bem? kkkk") == "Bom dia, tudo bem? kkkk"


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_pool_checkouts_are_not_logged_but_pool_warnings_are(
    database_url: str, level: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg_pool logs three INFO lines per checkout: at webhook rates that would be most of the log."""
    from mirage.db.connect import get_pool

    psycopg_logger = logging.getLogger("psycopg")
    monkeypatch.setattr(psycopg_logger, "level", logging.NOTSET)  # as older psycopg 3.2 releases leave it
    buf = io.StringIO()
    configure_logging(level, "json", buf)
    with get_pool(database_url).connection() as conn:
        conn.execute("select 1")
    logging.getLogger("psycopg.pool").warning("pool is running out of connections")
    assert [line["msg"] for line in _lines(buf) if line["logger"] == "psycopg.pool"] == [
        "pool is running out of connections"
    ]
