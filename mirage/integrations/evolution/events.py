"""Evolution webhook envelopes as typed values: safe parsing, idempotency keys, JIDs and text (pure, no I/O).

Everything here is a function of the request body; the ingest shell (`mirage.ingest`) turns the values into
SQL. Parsing never raises anything but `EnvelopeError`, whatever the bytes, so bad input can only give a 400.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from mirage.errors import MirageError

MAX_DEPTH = 64  # real envelopes nest about 8 deep; anything past this is an attack or a bug
MAX_ID = 128  # WhatsApp message ids are 16-32 characters; longer ones cannot be real
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
MESSAGE_EVENTS = ("messages.upsert", "send.message")
# Events that move a session's state; a late retry of an older one must not undo a newer one.
STATE_EVENTS = ("connection.update", "qrcode.updated", "logout.instance", "remove.instance")

# messages.update status -> msg_status (contract §4.4; numeric codes 0..5 follow the order below).
WA_STATUS = {
    "ERROR": "failed",
    "PENDING": "sending",
    "SERVER_ACK": "sent",
    "DELIVERY_ACK": "delivered",
    "READ": "read",
    "PLAYED": "read",
}
_WA_STATUS_CODES = {"0": "ERROR", "1": "PENDING", "2": "SERVER_ACK", "3": "DELIVERY_ACK", "4": "READ", "5": "PLAYED"}
# Order in which a message's status may only move forward. `received` (incoming) is terminal; `failed` beats a bare
# `sent` but never a delivery or read receipt, which prove the message arrived whatever else was reported.
STATUS_ORDER = ("unknown", "queued", "cancelled", "sending", "sent", "failed", "delivered", "read", "received")
CONNECTION_STATES = ("open", "connecting", "close", "refused")

# Key names whose values are credentials wherever they sit in a body (the instance token arrives as `apikey`).
_SECRET_KEY = re.compile(r"(?i)(api[_-]?key|token|secret|password|passwd|authorization|jwt|private[_-]?key)")
_QR_SECRET_FIELDS = ("code", "base64", "pairingCode")  # whoever scans the QR owns the session
_NEEDS_CLEANING = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")  # NUL or a surrogate escape somewhere in the body
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
_WRAPPERS: tuple[str, ...] = ("ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension")
_WRAPPERS += ("documentWithCaptionMessage", "editedMessage")
_CAPTIONED = ("imageMessage", "videoMessage", "documentMessage")


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
        doc = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise EnvelopeError("too_deep", f"more than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as e:
        raise EnvelopeError("invalid_json", f"line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # NaN / Infinity, or an integer with thousands of digits
        raise EnvelopeError("invalid_json", str(e)[:80]) from None
    doc = clean(doc, fix_text=_NEEDS_CLEANING.search(raw) is not None)
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
    """A copy of a cleaned body with credentials (apikey, tokens, secrets, the QR) replaced by [REDACTED]."""
    if isinstance(value, dict):
        qr = key == "qrcode"
        return {k: REDACTED if _is_secret(k, v, qr) else redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _is_secret(key: str, value: Any, in_qr: bool) -> bool:
    if value is None or value == "":
        return False
    return bool(_SECRET_KEY.search(key)) or (in_qr and key in _QR_SECRET_FIELDS)


def canonical_event(name: Any) -> str | None:
    """`messages.upsert`, `MESSAGES_UPSERT` and `messages-upsert` -> `messages.upsert`; unknown names lower-cased."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        return None
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


def epoch(value: Any) -> datetime | None:
    """WhatsApp's messageTimestamp (seconds; a number, a digit string or a protobuf Long) as a UTC datetime."""
    if isinstance(value, Mapping):  # Long serialised as {low, high, unsigned}
        low, high = value.get("low"), value.get("high")
        value = (high << 32) + (low & 0xFFFFFFFF) if isinstance(low, int) and isinstance(high, int) else None
    if isinstance(value, str) and value.isdigit() and len(value) <= 12:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value > 10**11:  # milliseconds
        value = value / 1000
    if not 1_230_768_000 <= value <= 4_102_444_800:  # 2009 .. 2100: anything else is not a WhatsApp time
        return None
    return datetime.fromtimestamp(value, UTC)


# --- JIDs ------------------------------------------------------------------------------------------

JidKind = Literal["pn", "lid", "group", "status", "broadcast", "newsletter", "other"]


@dataclass(frozen=True)
class Jid:
    """A WhatsApp address: `5521998765432@s.whatsapp.net` (pn), `123@lid`, `…@g.us`, `status@broadcast`."""

    raw: str
    kind: JidKind
    user: str  # the part before @, without a device suffix (`:12`)

    @property
    def phone(self) -> str | None:
        """E.164 (`+5521998765432`) for a phone JID."""
        return f"+{self.user}" if self.kind == "pn" else None

    @property
    def normal(self) -> str:
        """The JID without a device suffix: what Mirage stores and matches on."""
        suffix = {"pn": "s.whatsapp.net", "lid": "lid"}.get(self.kind)
        return f"{self.user}@{suffix}" if suffix else self.raw


def parse_jid(value: Any) -> Jid | None:
    if not isinstance(value, str) or "@" not in value or len(value) > MAX_NAME:
        return None
    raw = value.strip().lower()
    user, _, server = raw.rpartition("@")
    user = user.split(":", 1)[0]
    kind: JidKind
    if server in ("s.whatsapp.net", "c.us") and user.isdigit() and 8 <= len(user) <= 15 and user[0] != "0":
        kind = "pn"
    elif server == "lid" and user.isdigit():
        kind = "lid"
    elif server == "g.us":
        kind = "group"
    elif raw == "status@broadcast":
        kind = "status"
    elif server == "broadcast":
        kind = "broadcast"
    elif server == "newsletter":
        kind = "newsletter"
    else:
        kind = "other"
    return Jid(raw, kind, user)


def phone_candidates(e164: str | None) -> tuple[str, ...]:
    """The forms a number may be stored in: Brazil's mobile ninth digit comes and goes (contract §6.6)."""
    if not e164:
        return ()
    out = [e164]
    digits = e164[1:]
    if digits.startswith("55"):
        rest = digits[2:]
        if len(rest) == 10 and rest[2] in "6789":
            out.append(f"+55{rest[:2]}9{rest[2:]}")
        elif len(rest) == 11 and rest[2] == "9" and rest[3] in "6789":
            out.append(f"+55{rest[:2]}{rest[3:]}")
    return tuple(out)


IGNORED_CHATS = {"group": "group", "status": "status_broadcast", "broadcast": "broadcast", "newsletter": "newsletter"}


@dataclass(frozen=True)
class Peer:
    """The other side of a 1:1 chat, as far as the event tells: its phone and/or its LID."""

    jid: Jid | None
    phone: str | None  # E.164
    lid: str | None  # `NNN@lid`

    @property
    def wire_jid(self) -> str | None:
        """The JID to keep with the message: the phone JID when known, else what arrived."""
        if self.phone:
            return f"{self.phone[1:]}@s.whatsapp.net"
        return self.jid.normal if self.jid else None

    @property
    def ignored(self) -> str | None:
        if self.jid is None:
            return "no_chat"
        return IGNORED_CHATS.get(self.jid.kind)


def resolve_peer(*jids: Any) -> Peer:
    """Pick the phone and the LID among `remoteJid`, `remoteJidAlt`, `senderPn`, ... (the order varies by version).

    2.3.6 sends `remoteJid=NNN@lid` with the phone in `remoteJidAlt`; 2.3.7 puts the phone in both; 2.4 swaps
    them (contract §6.4). Whatever the order, the first phone JID is the phone and the first `@lid` the LID.
    """
    parsed = [j for j in (parse_jid(v) for v in jids) if j is not None]
    main = parsed[0] if parsed else None
    phone = next((j.phone for j in parsed if j.kind == "pn"), None)
    lid = next((j.normal for j in parsed if j.kind == "lid"), None)
    return Peer(main, phone, lid)


# --- events --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageEvent:
    """messages.upsert / send.message: one message seen by this instance, sent (`from_me`) or received."""

    event: str
    wa_msg_id: str | None
    from_me: bool
    peer: Peer
    message_type: str
    text: str | None
    quoted_id: str | None
    wa_ts: datetime | None
    status: str  # msg_status
    meta: dict[str, Any]

    @property
    def ignored(self) -> str | None:
        if self.peer.ignored:
            return self.peer.ignored
        return None if self.wa_msg_id else "no_message_id"


@dataclass(frozen=True)
class StatusEvent:
    """messages.update: a delivery receipt (`keyId` + `status`), which may arrive before its message."""

    wa_msg_id: str | None
    from_me: bool
    peer: Peer
    wa_status: str  # as sent (`DELIVERY_ACK`)
    status: str | None  # msg_status, None when it says nothing Mirage tracks (`DELETED`)

    @property
    def ignored(self) -> str | None:
        if self.peer.ignored:
            return self.peer.ignored
        if not self.wa_msg_id:
            return "no_message_id"
        return None if self.status else "status_not_tracked"


@dataclass(frozen=True)
class DeleteEvent:
    """messages.delete: the key of a message the sender revoked."""

    wa_msg_id: str | None
    peer: Peer

    @property
    def ignored(self) -> str | None:
        return self.peer.ignored or (None if self.wa_msg_id else "no_message_id")


@dataclass(frozen=True)
class ConnectionEvent:
    """connection.update: `open`, `connecting`, `close` (permanent) or `refused` (QR limit)."""

    state: str | None
    reason_code: int | None
    phone: str | None  # the connected account (wuid), once open
    profile_name: str | None

    @property
    def ignored(self) -> str | None:
        return None if self.state in CONNECTION_STATES else "unknown_state"


@dataclass(frozen=True, repr=False)
class QrEvent:
    """qrcode.updated: a new QR (and pairing code), or Evolution giving up after QRCODE_LIMIT codes."""

    code: str | None
    pairing_code: str | None
    limit_reached: bool

    def __repr__(self) -> str:
        return f"QrEvent(has_code={self.code is not None}, limit_reached={self.limit_reached})"

    @property
    def ignored(self) -> str | None:
        return None if self.code or self.limit_reached else "no_qr"


@dataclass(frozen=True)
class LifecycleEvent:
    """logout.instance / remove.instance / instance.create / status.instance."""

    event: str
    instance_id: str | None = None
    ignored: str | None = None


@dataclass(frozen=True)
class OtherEvent:
    """Any event Mirage stores but does not act on (contacts.*, chats.*, presence.update, ...)."""

    event: str
    ignored: str | None = "not_used"


Event = MessageEvent | StatusEvent | DeleteEvent | ConnectionEvent | QrEvent | LifecycleEvent | OtherEvent


def classify(env: Envelope) -> Event:
    """The typed view of an envelope; never raises, whatever `data` holds."""
    data = env.data if isinstance(env.data, dict) else {}
    if env.event in MESSAGE_EVENTS:
        return _message(env.event, data)
    if env.event == "messages.update":
        return _status(data)
    if env.event == "messages.delete":
        key = _dict(data, "key") or data
        return DeleteEvent(_id(key.get("id")), resolve_peer(key.get("remoteJid"), key.get("remoteJidAlt")))
    if env.event == "connection.update":
        wuid = parse_jid(data.get("wuid"))
        state = data.get("state")
        return ConnectionEvent(
            state=state if isinstance(state, str) else None,
            reason_code=_int(data.get("statusReason")),
            phone=wuid.phone if wuid else None,
            profile_name=_str(data.get("profileName")),
        )
    if env.event == "qrcode.updated":
        qr = _dict(data, "qrcode")
        # The QR-limit variant has no `qrcode`: {"message": "QR code limit reached, ...", "statusCode": 500}.
        limit = not qr and ((_int(data.get("statusCode")) or 0) >= 400 or "limit" in str(data.get("message")).lower())
        return QrEvent(
            code=_secret_str(qr.get("code"), 4096) or _secret_str(qr.get("base64"), 65536),
            pairing_code=_secret_str(qr.get("pairingCode")),
            limit_reached=limit,
        )
    if env.event in ("logout.instance", "remove.instance", "status.instance"):
        return LifecycleEvent(env.event)
    if env.event == "instance.create":
        return LifecycleEvent(env.event, instance_id=_id(data.get("instanceId")))
    return OtherEvent(env.event)


def _message(event: str, data: dict[str, Any]) -> MessageEvent:
    key = _dict(data, "key")
    from_me = key.get("fromMe") is True
    peer = resolve_peer(key.get("remoteJid"), key.get("remoteJidAlt"), key.get("senderPn"), key.get("senderLid"))
    message = _dict(data, "message")
    wa_status = _wa_status(data.get("status"))
    status = WA_STATUS.get(wa_status or "", "sent") if from_me else "received"
    meta: dict[str, Any] = {"event": event}
    for src, dst in (("pushName", "push_name"), ("source", "source")):
        if v := _str(data.get(src)):
            meta[dst] = v[:MAX_NAME]
    if peer.lid:
        meta["peer_lid"] = peer.lid
    if mode := _str(key.get("addressingMode")):
        meta["addressing_mode"] = mode[:16]
    return MessageEvent(
        event=event,
        wa_msg_id=_id(key.get("id")),
        from_me=from_me,
        peer=peer,
        message_type=message_type(data, message),
        text=message_text(message),
        quoted_id=quoted_id(data, message),
        wa_ts=epoch(data.get("messageTimestamp")),
        status=status,
        meta=meta,
    )


def _status(data: dict[str, Any]) -> StatusEvent:
    wa_status = _wa_status(data.get("status")) or ""
    from_me = data.get("fromMe") is True
    status = WA_STATUS.get(wa_status)
    if status and not from_me:
        status = "received"  # our own read receipt of an incoming message: only its read_at moves
    return StatusEvent(
        wa_msg_id=_id(data.get("keyId")),
        from_me=from_me,
        peer=resolve_peer(data.get("remoteJid"), data.get("remoteJidAlt")),
        wa_status=wa_status,
        status=status,
    )


def _wa_status(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = value.strip().upper()
    return _WA_STATUS_CODES.get(text, text)[:32]


def unwrap(message: dict[str, Any]) -> dict[str, Any]:
    """The inner message of ephemeral / view-once / document-with-caption wrappers."""
    for _ in range(4):
        inner = next((_dict(_dict(message, w), "message") for w in _WRAPPERS if _dict(message, w)), None)
        if not inner:
            break
        message = inner
    return message


def message_text(message: dict[str, Any]) -> str | None:
    """`conversation`, else `extendedTextMessage.text`, else a media caption (contract §4.4)."""
    message = unwrap(message)
    text = _str(message.get("conversation")) or _str(_dict(message, "extendedTextMessage").get("text"))
    if text is None:
        text = next((c for c in (_str(_dict(message, k).get("caption")) for k in _CAPTIONED) if c), None)
    return text


def message_type(data: dict[str, Any], message: dict[str, Any]) -> str:
    declared = _str(data.get("messageType"))
    if declared:
        return declared[:64]
    inner = unwrap(message)
    first = next((k for k in inner if k not in ("messageContextInfo",) and isinstance(k, str)), None)
    return first[:64] if first else "unknown"


def quoted_id(data: dict[str, Any], message: dict[str, Any]) -> str | None:
    """The id of the message this one replies to: top-level contextInfo (2.3.x) or the inner message's."""
    found = _id(_dict(data, "contextInfo").get("stanzaId"))
    if found:
        return found
    for part in unwrap(message).values():
        if isinstance(part, dict) and (found := _id(_dict(part, "contextInfo").get("stanzaId"))):
            return found
    return None


def idem_key(env: Envelope, event: Event) -> str:
    """What makes a delivery the same event: a message per instance (upsert and send share it), a receipt per
    status, otherwise the body itself (contract §6.1)."""
    if isinstance(event, MessageEvent) and event.wa_msg_id:
        return _bounded(f"msg:{env.instance}:{event.wa_msg_id}")
    if isinstance(event, StatusEvent) and event.wa_msg_id and event.wa_status:
        return _bounded(f"status:{env.instance}:{event.wa_msg_id}:{event.wa_status}")
    return f"sha256:{env.body_sha256}"


def _bounded(key: str) -> str:
    if len(key) <= 200:
        return key
    head = key.split(":", 1)[0]
    return f"{head}:sha256:{hashlib.sha256(key.encode('utf-8', 'replace')).hexdigest()}"


def event_time(env: Envelope, event: Event) -> datetime | None:
    """t_webhook_events.wa_ts: WhatsApp's time for messages, Evolution's date_time for the rest."""
    if isinstance(event, MessageEvent):
        return event.wa_ts
    return env.date_time


def status_rank(status: str) -> int:
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else 0


# --- small safe getters ---------------------------------------------------------------------------


def _dict(d: Any, key: str) -> dict[str, Any]:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, dict) else {}


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _secret_str(v: Any, limit: int = MAX_NAME) -> str | None:
    """A credential-like string (QR, pairing code); the redaction marker of a stored body counts as absent."""
    s = _str(v)
    return None if s is None or s == REDACTED or len(s) > limit else s


def _id(v: Any) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or not v or len(v) > MAX_ID or not v.isprintable():
        return None
    return str(v)


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.isdigit() and len(v) < 10:
        return int(v)
    return None
