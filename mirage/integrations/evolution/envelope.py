"""Evolution webhook bodies as checked values: strict decoding, bounded depth, NUL-free text, credentials redacted.

Pure: everything is a function of the request body. `parse_envelope` never raises anything but `EnvelopeError`,
whatever the bytes, so bad input can only give a 400. The typed events are in `events.py`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mirage.errors import MirageError

MAX_DEPTH = 64  # real envelopes nest about 8 deep; anything past this is an attack or a bug
MAX_NAME = 128  # instance and event names
REDACTED = "[REDACTED]"
REPLACEMENT = "\ufffd"  # stands in for NUL and lone surrogates, which Postgres text/jsonb cannot hold

# Lower-case dotted names as the payload carries them (contract §4.1), keyed by their UPPER_SNAKE form.
_EVENT_NAMES = """
    application.startup instance.create instance.delete qrcode.updated connection.update status.instance
    messages.set messages.upsert messages.edited messages.update messages.delete send.message send.message.update
    contacts.set contacts.upsert contacts.update presence.update chats.set chats.upsert chats.update chats.delete
    groups.upsert groups.update group-participants.update labels.edit labels.association call typebot.start
    typebot.change-status remove.instance logout.instance messaging-history.set
"""
KNOWN_EVENTS = {re.sub(r"[.-]", "_", name).upper(): name for name in _EVENT_NAMES.split()}
_CANONICAL = frozenset(KNOWN_EVENTS.values())

# Key names whose values are credentials wherever they sit in a body (the instance token arrives as `apikey`).
_SECRET_KEY = re.compile(r"(?i)(api[_-]?key|token|secret|password|passwd|authorization|jwt|private[_-]?key)")
_QR_SECRET_FIELDS = ("code", "base64", "pairingCode")  # whoever scans the QR owns the session
_NEEDS_CLEANING = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")  # NUL or a surrogate escape somewhere in the body
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


class EnvelopeError(MirageError):
    """A webhook body Mirage cannot accept; `reason` is a short code sent back in the 400 answer."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Envelope:
    """One webhook body: the canonical event name, the instance, the cleaned data and what to store."""

    event: str
    instance: str
    data: Any = field(repr=False)  # NUL-free, not redacted: what normalisation reads
    payload: dict[str, Any] = field(repr=False)  # NUL-free and redacted: what t_webhook_events stores
    body_sha256: str
    sender: str | None = None  # the connected account's JID, absent before the first connection
    date_time: datetime | None = None  # Evolution's clock (local time with a fake Z): only for ordering


def parse_envelope(raw: bytes) -> Envelope:
    """Decode, bound and clean a webhook body; every failure is an EnvelopeError with a reason code."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EnvelopeError("invalid_utf8", f"byte {e.start}") from None
    try:
        doc = _DECODER.decode(text)
    except RecursionError:
        raise EnvelopeError("too_deep", f"more than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as e:
        raise EnvelopeError("invalid_json", f"line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # NaN / Infinity, or an integer with thousands of digits
        raise EnvelopeError("invalid_json", str(e)[:80]) from None
    if _NEEDS_CLEANING.search(raw) is not None:
        doc = clean(doc)
    elif raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:  # fewer brackets than that cannot nest too deep
        clean(doc, fix_text=False)
    return envelope_from_document(doc, hashlib.sha256(raw).hexdigest())


def envelope_from_document(doc: Any, body_sha256: str) -> Envelope:
    """The envelope of an already cleaned document (a fresh body, or a stored payload being reprocessed)."""
    if not isinstance(doc, dict):
        raise EnvelopeError("not_an_object", "the body must be a JSON object")
    event = canonical_event(doc.get("event"))
    if event is None:
        raise EnvelopeError("bad_event", "`event` must be an event name")
    instance = doc.get("instance")
    if not isinstance(instance, str) or not instance.strip() or len(instance) > MAX_NAME:
        raise EnvelopeError("bad_instance", "`instance` must be the instance name")
    sender = doc.get("sender")
    return Envelope(
        event=event,
        instance=instance,
        data=doc.get("data"),
        payload=redact(doc),
        body_sha256=body_sha256,
        sender=sender if isinstance(sender, str) and len(sender) <= MAX_NAME else None,
        date_time=parse_iso(doc.get("date_time")),
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf; jsonb has no inf
        raise EnvelopeError("invalid_json", "number out of range")
    return value


# Built once: json.loads() with any option builds a new decoder (and its scanner) on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def clean(value: Any, *, fix_text: bool = True, depth: int = 0) -> Any:
    """Check depth and numbers; with `fix_text`, return a copy where NUL and lone surrogates (which Postgres
    text/jsonb refuse) are U+FFFD. Without it the value is only checked and returned as is."""
    if depth > MAX_DEPTH:
        raise EnvelopeError("too_deep", f"more than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return _BAD_CHARS.sub(REPLACEMENT, value) if fix_text else value
    if isinstance(value, dict):
        if not fix_text:
            for v in value.values():
                clean(v, fix_text=False, depth=depth + 1)
            return value
        return {_BAD_CHARS.sub(REPLACEMENT, k): clean(v, depth=depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        if not fix_text:
            for v in value:
                clean(v, fix_text=False, depth=depth + 1)
            return value
        return [clean(v, depth=depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):  # 1e999 parses as inf; jsonb has no inf
        raise EnvelopeError("invalid_json", "number out of range")
    return value


def redact(value: Any, key: str = "") -> Any:
    """A copy of a cleaned body with credentials (apikey, tokens, secrets, the QR) replaced by [REDACTED].

    Only the containers on the way to a secret are copied; the rest is shared with `value`.
    """
    if isinstance(value, dict):
        qr = key == "qrcode"
        out: dict[str, Any] | None = None
        for k, v in value.items():
            new = REDACTED if _is_secret(k, v, qr) else redact(v, k) if isinstance(v, dict | list) else v
            if new is not v:
                out = dict(value) if out is None else out
                out[k] = new
        return value if out is None else out
    if isinstance(value, list):
        items: list[Any] | None = None
        for i, v in enumerate(value):
            new = redact(v) if isinstance(v, dict | list) else v
            if new is not v:
                items = list(value) if items is None else items
                items[i] = new
        return value if items is None else items
    return value


def _is_secret(key: str, value: Any, in_qr: bool) -> bool:
    if value is None or value == "":
        return False
    return _secret_name(key) or (in_qr and key in _QR_SECRET_FIELDS)


def _secret_name(key: str) -> bool:
    """Whether a key names a credential; remembered, since the same few dozen keys come in every body."""
    found = _SECRET_NAMES.get(key)
    if found is None:
        if len(_SECRET_NAMES) >= 4096:  # keys are the sender's choice: bound what is remembered
            _SECRET_NAMES.clear()
        found = _SECRET_NAMES[key] = _SECRET_KEY.search(key) is not None
    return found


_SECRET_NAMES: dict[str, bool] = {}


def canonical_event(name: Any) -> str | None:
    """`messages.upsert`, `MESSAGES_UPSERT` and `messages-upsert` -> `messages.upsert`; unknown names lower-cased."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        return None
    if name in _CANONICAL:  # the usual case
        return name
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        return None
    return KNOWN_EVENTS.get(re.sub(r"[.-]", "_", name).upper(), name.lower())


def route_matches(route_event: str, event: str) -> bool:
    """Whether a by-events URL suffix (`/messages-upsert`) names the body's event (`messages.upsert`)."""
    return canonical_event(route_event) == event


def parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
