"""Evolution webhook envelopes as typed events: JIDs, peers, text, idempotency keys (pure, no I/O).

Everything here is a function of an `Envelope` (`envelope.py`: the checked, cleaned body); the ingest shell
(`mirage.ingest`) turns the values into SQL. `classify` never raises, whatever the envelope holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from mirage.integrations.evolution.envelope import MAX_NAME, REDACTED, Envelope

MAX_ID = 128  # WhatsApp message ids are 16-32 characters; longer ones cannot be real
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

_WRAPPERS: tuple[str, ...] = ("ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension")
_WRAPPERS += ("documentWithCaptionMessage", "editedMessage")
_CAPTIONED = ("imageMessage", "videoMessage", "documentMessage")


# Bounds on every number a payload may carry: JSON (and Python) integers have no limit, so anything used as a
# time, a count or a code is checked against these before any arithmetic or conversion (issue 10 item 2).
INT32 = 2**31 - 1
_MAX_EPOCH = 10**15  # milliseconds up to year 33658: beyond this nothing is a time


def epoch(value: Any) -> datetime | None:
    """WhatsApp's messageTimestamp (seconds; a number, a digit string or a protobuf Long) as a UTC datetime.

    Any number out of range (10**400, a Long whose halves are not 32-bit) is None, never an error.
    """
    if isinstance(value, Mapping):  # Long serialised as {low, high, unsigned}
        low, high = value.get("low"), value.get("high")
        if isinstance(low, int) and isinstance(high, int) and _int32ish(low) and _int32ish(high):
            value = (high << 32) + (low & 0xFFFFFFFF)
        else:
            value = None
    if isinstance(value, str) and value.isdigit() and len(value) <= 12:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not -_MAX_EPOCH < value < _MAX_EPOCH:
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
    """messages.delete: the key of a message the sender revoked, which may arrive before the message itself."""

    wa_msg_id: str | None
    peer: Peer
    from_me: bool = False

    @property
    def status(self) -> str:
        """The status of the tombstone row kept until the message arrives (the message's own status wins)."""
        return "unknown" if self.from_me else "received"

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
        peer = resolve_peer(key.get("remoteJid"), key.get("remoteJidAlt"))
        return DeleteEvent(_id(key.get("id")), peer, from_me=key.get("fromMe") is True)
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
        value = str(value) if 0 <= value <= INT32 else None
    if not isinstance(value, str):
        return None
    text = value.strip().upper()
    return _WA_STATUS_CODES.get(text, text)[:32]


def unwrap(message: dict[str, Any]) -> dict[str, Any]:
    """The inner message of ephemeral / view-once / document-with-caption wrappers."""
    for _ in range(4):
        wrapper = next((w for w in map(message.get, _WRAPPERS) if w and isinstance(w, dict)), None)
        inner = _dict(wrapper, "message")
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


def event_time(env: Envelope, event: Event, received_at: datetime) -> datetime | None:
    """t_webhook_events.wa_ts: WhatsApp's time for messages, Evolution's date_time for the rest.

    Evolution's date_time orders state events, so a time after `received_at` (a clock step on Evolution's
    host) is clamped to it: one event from the future must not make every later disconnect look stale.
    """
    if isinstance(event, MessageEvent):
        return event.wa_ts
    return None if env.date_time is None else min(env.date_time, received_at)


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
        v = str(v) if -(10**MAX_ID) < v < 10**MAX_ID else None
    if not isinstance(v, str) or not v or len(v) > MAX_ID or not v.isprintable():
        return None
    return str(v)


def _int32ish(v: Any) -> bool:
    """A protobuf Long half: an int within 32 bits, signed or not."""
    return isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**32


def _int(v: Any) -> int | None:
    """A small non-negative code (statusReason, statusCode): an int or digit string within int32, else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if 0 <= v <= INT32 else None
    if isinstance(v, str) and v.isdigit() and len(v) < 10:
        return int(v)
    return None
