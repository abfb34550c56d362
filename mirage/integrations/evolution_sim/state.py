"""The simulator's in-memory world: instances, their webhook config, and the messages that went between them."""

from __future__ import annotations

import asyncio
import hashlib
import random
import string
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mirage.integrations.evolution.schemas import EVENTS

# EventController.events in 2.3.6: what /webhook/set accepts and what `events: []` expands to.
ALL_EVENTS: tuple[str, ...] = EVENTS
INTEGRATIONS = ("WHATSAPP-BAILEYS", "WHATSAPP-BUSINESS", "EVOLUTION")
PN_SUFFIX = "@s.whatsapp.net"


def now_iso() -> str:
    """Evolution's `date_time` style: ISO 8601 with milliseconds and a `Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_key(event: str) -> str:
    """`messages.upsert` -> `MESSAGES_UPSERT` (what `webhook.events` lists)."""
    return event.replace(".", "_").replace("-", "_").upper()


def event_suffix(event: str) -> str:
    """`messages.upsert` -> `messages-upsert` (the byEvents URL suffix)."""
    return event_key(event).replace("_", "-").lower()


def digits_of(number: str) -> str:
    """The phone digits of a number or a JID (`+55 11 9…`, `5511…@s.whatsapp.net` -> `5511…`)."""
    head = number.split("@", 1)[0].split(":", 1)[0]
    return "".join(ch for ch in head if ch.isdigit())


def pn_jid(number: str) -> str:
    return digits_of(number) + PN_SUFFIX


def lid_for(number: str) -> str:
    """A stable fake LID for a phone number (15 digits, like WhatsApp's)."""
    h = int(hashlib.sha256(("lid:" + digits_of(number)).encode()).hexdigest(), 16)
    return f"{100000000000000 + h % 899999999999999}@lid"


def baileys_id(rng: random.Random) -> str:
    """Ids of messages sent by Baileys (the API): `3EB0` + 18 hex, source `web`."""
    return "3EB0" + "".join(rng.choices("0123456789ABCDEF", k=18))


def android_id(rng: random.Random) -> str:
    """Ids of messages typed on an Android phone: 32 hex, source `android`."""
    return "".join(rng.choices("0123456789ABCDEF", k=32))


def cuid(rng: random.Random) -> str:
    """A Prisma cuid-looking row id (`messages.update.messageId`, webhook row ids)."""
    return "cm" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=23))


@dataclass
class SimWebhook:
    """An instance's webhook row (Prisma `Webhook`): what /webhook/find returns."""

    id: str
    url: str
    headers: dict[str, str]
    enabled: bool
    events: list[str]
    by_events: bool
    base64: bool
    instance_id: str
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "headers": dict(self.headers),
            "enabled": self.enabled,
            "events": list(self.events),
            "webhookByEvents": self.by_events,
            "webhookBase64": self.base64,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "instanceId": self.instance_id,
        }


@dataclass
class SimInstance:
    """One Evolution instance and its Baileys connection."""

    name: str
    instance_id: str
    token: str
    integration: str
    settings: dict[str, Any]
    state: str = "close"  # open | connecting | close | refused
    number: str | None = None  # phone given at create / connect?number= (pairing code)
    owner_jid: str | None = None
    wuid: str | None = None  # the account last connected: webhook `sender`, kept after a logout like Evolution
    profile_name: str | None = None
    webhook: SimWebhook | None = None
    qr_count: int = 0
    qr_code: str | None = None
    qr_base64: str | None = None
    pairing_code: str | None = None
    disconnection_code: int | None = None
    disconnection_at: str | None = None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    messages: int = 0
    contacts: set[str] = field(default_factory=set)

    @property
    def jid(self) -> str | None:
        return self.owner_jid

    def qr_object(self) -> dict[str, Any]:
        """The QR object connect/create answer: `{"count": 0}` until the first QR exists."""
        if not self.qr_code:
            return {"count": 0}
        return {
            "pairingCode": self.pairing_code,
            "code": self.qr_code,
            "base64": self.qr_base64,
            "count": self.qr_count,
        }

    def row(self) -> dict[str, Any]:
        """The raw Prisma Instance row fetchInstances returns (token included, as Evolution does)."""
        return {
            "id": self.instance_id,
            "name": self.name,
            "connectionStatus": "close" if self.state == "refused" else self.state,
            "ownerJid": self.owner_jid,
            "profileName": self.profile_name,
            "profilePicUrl": _picture(self.owner_jid) if self.owner_jid else None,
            "integration": self.integration,
            "number": self.number,
            "businessId": None,
            "token": self.token,
            "clientName": "evolution_exchange",
            "disconnectionReasonCode": self.disconnection_code,
            "disconnectionObject": None,
            "disconnectionAt": self.disconnection_at,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "Chatwoot": None,
            "Proxy": None,
            "Rabbitmq": None,
            "Nats": None,
            "Sqs": None,
            "Websocket": None,
            "Setting": {
                "id": "cm" + hashlib.sha256(self.instance_id.encode()).hexdigest()[:23],
                **self.settings,
                "wavoipToken": "",
                "createdAt": self.created_at,
                "updatedAt": self.created_at,
                "instanceId": self.instance_id,
            },
            "_count": {"Message": self.messages, "Contact": len(self.contacts), "Chat": len(self.contacts)},
        }


@dataclass
class SimMessage:
    """A message an instance sent, kept so acks, reads and replies can refer back to it."""

    id: str
    from_instance: str
    to_jid: str
    text: str
    timestamp: int
    to_instance: str | None = None  # when the receiver is another simulated instance
    status: str = "PENDING"
    read: bool = False
    quoted_id: str | None = None


@dataclass
class SimContact:
    """A simulated person; remembers their script position and whether they opted out."""

    number: str
    name: str
    lid: str | None
    script_pos: int = 0
    opted_out: bool = False
    replies: int = 0


def _picture(jid: str) -> str:
    return f"https://pps.whatsapp.net/v/t61.24694-24/{digits_of(jid)}_n.jpg?ccb=11-4&_nc_sid=5e03e0"


def profile_picture(jid: str) -> str:
    return _picture(jid)


def epoch() -> int:
    return int(time.time())
