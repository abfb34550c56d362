"""Structured logging: JSON lines or text, context (correlation id, tenant, job) and secret redaction."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

REDACTED = "[REDACTED]"

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("log_context", default=_EMPTY)

# Keys whose values are secret wherever they appear (log extras, dicts, query strings).
SENSITIVE_KEY = re.compile(
    r"(?i)(api[_-]?key|apikey|token|secret|password|passwd|authorization|jwt[_-]?key|signature|cookie|"
    r"private[_-]?key|secret[_-]?keys)"
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # key=value / "key": "value" pairs in free text
    (
        re.compile(
            r"(?i)(\"?(?:api[_-]?key|apikey|token|secret|password|authorization|jwt[_-]?key|x-webhook-secret)\"?"
            r"\s*[:=]\s*\"?(?:(?:bearer|basic)\s+)?)([^\"\s,;&}]+)"
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*"), r"\1 " + REDACTED),
    (re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)"), r"\1" + REDACTED + r"\3"),  # passwords in URLs
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), REDACTED),  # JWTs
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"), REDACTED),  # OpenAI-style keys
    (re.compile(r"\bgAAAAA[A-Za-z0-9_\-=]{20,}"), REDACTED),  # Fernet tokens
]

_known_secrets: set[str] = set()
_known_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that any log line containing it is redacted (values under 6 chars are skipped)."""
    if value and len(value) >= 6:
        with _known_lock:
            _known_secrets.add(value)


def redact_text(text: str) -> str:
    """Replace known secret values and secret-looking patterns in `text`."""
    if _known_secrets:
        with _known_lock:
            secrets = sorted(_known_secrets, key=len, reverse=True)
        for s in secrets:
            if s in text:
                text = text.replace(s, REDACTED)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_value(value: Any, key: str | None = None) -> Any:
    """Redact a structured value: secret-named keys are replaced whole, strings are scanned."""
    if key is not None and SENSITIVE_KEY.search(key) and value not in (None, "", False):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def new_correlation_id() -> str:
    return uuid.uuid4().hex[:16]


@contextlib.contextmanager
def log_context(correlation_id: str | None = None, **fields: Any) -> Iterator[str]:
    """Bind a correlation id (new if none) and fields (tenant, job_id, ...) to everything logged inside."""
    cid = correlation_id or _correlation_id.get() or new_correlation_id()
    t1 = _correlation_id.set(cid)
    t2 = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield cid
    finally:
        _context.reset(t2)
        _correlation_id.reset(t1)


def current_context() -> dict[str, Any]:
    """The bound fields, including the correlation id; jobs carry this across the queue."""
    ctx = dict(_context.get())
    if cid := _correlation_id.get():
        ctx["correlation_id"] = cid
    return ctx


_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class RedactingFilter(logging.Filter):
    """Redacts the rendered message and every extra field of a record before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            msg = str(record.msg)
        record.msg = redact_text(msg)
        record.args = None
        for k, v in _extras(record).items():
            setattr(record, k, redact_value(v, k))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, correlation_id, tenant, job_id and extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "correlation_id": _correlation_id.get(),
        }
        out.update(_context.get())
        out.update(_extras(record))
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable line: time, level, logger, message, then key=value context."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = {**_context.get(), **_extras(record)}
        if cid := _correlation_id.get():
            fields = {"cid": cid, **fields}
        tail = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}" + (f"  {tail}" if tail else "")
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """Install one handler on the root logger; `fmt` auto -> text on a terminal, JSON otherwise."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_mirage", False):
            root.removeHandler(h)
    handler._mirage = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # psycopg.pool logs three INFO lines per connection checkout: at webhook rates, most of the log.
    for noisy in (
        "httpx",
        "httpcore",
        "httpx2",
        "httpcore2",
        "pgserver",
        "psycopg.pool",
        "rq.worker",
        "watchfiles",
        "asyncio",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
