"""Values exchanged with Evolution API v2: the webhook config Mirage installs and typed views of its answers."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The events Mirage subscribes every instance to (UPPER_SNAKE, as Evolution's `webhook.events` wants them).
WEBHOOK_EVENTS: tuple[str, ...] = (
    "QRCODE_UPDATED",
    "CONNECTION_UPDATE",
    "MESSAGES_UPSERT",
    "MESSAGES_UPDATE",
    "SEND_MESSAGE",
    "LOGOUT_INSTANCE",
    "REMOVE_INSTANCE",
    "STATUS_INSTANCE",
)
WEBHOOK_PATH = "/api/webhooks/evolution"
SECRET_HEADER = "x-webhook-secret"  # noqa: S105 - a header name
JWT_KEY_HEADER = "jwt_key"  # Evolution removes it and sends `Authorization: Bearer <HS256 JWT>` instead
PRESENCES = ("available", "unavailable", "composing", "recording", "paused")
STATES = ("open", "connecting", "close", "refused")


def webhook_url(public_url: str) -> str:
    """Where Evolution posts an instance's events: `<MIRAGE_PUBLIC_URL>/api/webhooks/evolution`."""
    return public_url.rstrip("/") + WEBHOOK_PATH


def to_evolution_number(number: str) -> str:
    """`+55 (11) 91234-5678` -> `5511912345678`; a full JID (`…@s.whatsapp.net`, `…@lid`, `…@g.us`) is kept."""
    if "@" in number:
        return number
    return "".join(ch for ch in number if ch.isdigit())


@dataclass(frozen=True, repr=False)
class WebhookConfig:
    """A per-instance webhook: URL, the secret header and the JWT key (both secret: repr hides them)."""

    url: str
    secret: str
    jwt_key: str
    events: tuple[str, ...] = WEBHOOK_EVENTS
    by_events: bool = False
    base64: bool = False

    def __repr__(self) -> str:
        return f"WebhookConfig(url={self.url!r}, events={len(self.events)}, by_events={self.by_events})"

    def headers(self) -> dict[str, str]:
        return {SECRET_HEADER: self.secret, JWT_KEY_HEADER: self.jwt_key}

    def body(self, *, enabled: bool | None = None) -> dict[str, Any]:
        """The nested object for `POST /instance/create` (`webhook`) and, with `enabled`, for `/webhook/set`."""
        out: dict[str, Any] = {}
        if enabled is not None:
            out["enabled"] = enabled
        out |= {
            "url": self.url,
            "byEvents": self.by_events,
            "base64": self.base64,
            "headers": self.headers(),
            "events": list(self.events),
        }
        return out


@dataclass(frozen=True)
class QrCode:
    """One QR as Evolution returns it: the raw string, a PNG data URL, the pairing code and how many so far."""

    # Whoever scans the QR (or types the pairing code) owns the session: never in a repr, hence never in a log.
    code: str = field(repr=False)
    base64: str = field(repr=False)
    pairing_code: str | None = field(repr=False)
    count: int

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> QrCode | None:
        """A QR object (`connect`, `create.qrcode`, `qrcode.updated.data.qrcode`); None for `{"count": 0}`."""
        code, data_url = body.get("code"), body.get("base64")
        if not isinstance(code, str) or not code or not isinstance(data_url, str) or not data_url:
            return None
        pairing = body.get("pairingCode")
        return cls(
            code, data_url, pairing if isinstance(pairing, str) and pairing else None, int(body.get("count") or 0)
        )

    def png(self) -> bytes:
        """The PNG bytes behind the `data:image/png;base64,` URL."""
        _, _, payload = self.base64.partition("base64,")
        try:
            return base64.b64decode(payload or self.base64, validate=False)
        except (binascii.Error, ValueError):
            return b""


@dataclass(frozen=True)
class ConnectResult:
    """What `GET /instance/connect` (and `restart`) answered: a QR, not ready yet (`count: 0`), or a state."""

    state: str | None
    qr: QrCode | None
    count: int
    raw: Any = field(repr=False, default=None)

    @classmethod
    def parse(cls, body: Any) -> ConnectResult:
        if not isinstance(body, dict):
            return cls(None, None, 0, body)
        instance = body.get("instance")
        if isinstance(instance, dict) and ("state" in instance or "status" in instance):
            return cls(str(instance.get("state") or instance.get("status")), None, 0, body)
        qr = QrCode.parse(body)
        return cls("connecting" if qr else None, qr, int(body.get("count") or 0), body)


@dataclass(frozen=True)
class CreatedInstance:
    """`POST /instance/create` (201): the instance's id, its token (`hash`), its status and maybe a first QR."""

    name: str
    instance_id: str | None
    token: str
    status: str
    qr: QrCode | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, body: dict[str, Any]) -> CreatedInstance:
        inst: dict[str, Any] = body["instance"] if isinstance(body.get("instance"), dict) else {}
        token = body.get("hash")
        if isinstance(token, dict):  # v2.0/2.1 wrapped it as {"apikey": ...}
            token = token.get("apikey")
        qr_body = body.get("qrcode")
        return cls(
            name=str(inst.get("instanceName", "")),
            instance_id=inst.get("instanceId"),
            token=str(token or ""),
            status=str(inst.get("status") or "close"),
            qr=QrCode.parse(qr_body) if isinstance(qr_body, dict) else None,
            raw=body,
        )


@dataclass(frozen=True)
class InstanceInfo:
    """One row of `GET /instance/fetchInstances` (Evolution's raw Instance row, token included)."""

    name: str
    instance_id: str | None
    state: str
    owner_jid: str | None
    profile_name: str | None
    token: str | None = field(repr=False)
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, row: dict[str, Any]) -> InstanceInfo:
        return cls(
            name=str(row.get("name", "")),
            instance_id=row.get("id"),
            state=str(row.get("connectionStatus") or "close"),
            owner_jid=row.get("ownerJid"),
            profile_name=row.get("profileName"),
            token=row.get("token"),
            raw=row,
        )

    @property
    def phone(self) -> str | None:
        """`+5511912345678` from `ownerJid`, when connected."""
        if not self.owner_jid:
            return None
        digits = self.owner_jid.split("@", 1)[0].split(":", 1)[0]
        return f"+{digits}" if digits.isdigit() else None


@dataclass(frozen=True)
class SentMessage:
    """`POST /message/sendText` (201): `key.id` is the id later seen as `messages.update.keyId`."""

    id: str
    remote_jid: str
    status: str
    timestamp: int | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, body: dict[str, Any]) -> SentMessage:
        key: dict[str, Any] = body["key"] if isinstance(body.get("key"), dict) else {}
        ts = body.get("messageTimestamp")
        return cls(
            id=str(key.get("id", "")),
            remote_jid=str(key.get("remoteJid", "")),
            status=str(body.get("status", "PENDING")),
            timestamp=int(ts) if isinstance(ts, int | float | str) and str(ts).isdigit() else None,
            raw=body,
        )


@dataclass(frozen=True)
class NumberCheck:
    """One answer of `POST /chat/whatsappNumbers`."""

    number: str
    jid: str
    exists: bool
    name: str | None = None
    lid: str | None = None

    @classmethod
    def parse(cls, row: dict[str, Any]) -> NumberCheck:
        return cls(
            number=str(row.get("number", "")),
            jid=str(row.get("jid", "")),
            exists=bool(row.get("exists")),
            name=row.get("name"),
            lid=row.get("lid"),
        )
