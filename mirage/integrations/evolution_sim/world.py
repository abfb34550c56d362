"""What happens inside the simulated Evolution: connections and QR series, scans, messages, acks and human replies.

Runs on the server's event loop; the HTTP layer (app.py) validates requests and calls in here. Every webhook
goes through WebhookDispatcher so it looks exactly like one from Evolution 2.3.6.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import uuid
from collections.abc import Coroutine
from typing import Any

from mirage.integrations.evolution_sim.config import SimConfig
from mirage.integrations.evolution_sim.humans import Reply, contact_for, decide_reply
from mirage.integrations.evolution_sim.qr import pairing_code, png_data_url, qr_string
from mirage.integrations.evolution_sim.state import (
    ALL_EVENTS,
    PN_SUFFIX,
    SimContact,
    SimInstance,
    SimMessage,
    SimWebhook,
    android_id,
    baileys_id,
    cuid,
    digits_of,
    epoch,
    now_iso,
    pn_jid,
    profile_picture,
)
from mirage.integrations.evolution_sim.webhooks import Delivery, WebhookDispatcher

log = logging.getLogger(__name__)

_STATUS_RANK = {"PENDING": 1, "SERVER_ACK": 2, "DELIVERY_ACK": 3, "READ": 4, "PLAYED": 5}


class SimRefusal(Exception):
    """An Evolution error answer: HTTP status and the `response.message` value (or a whole `body` of its own)."""

    def __init__(self, status: int, message: Any, *, body: Any = None) -> None:
        super().__init__(str(message))
        self.status = status
        self.message = message
        self.body = body


class SimWorld:
    """All simulated state and behaviour; one per simulator app."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.instances: dict[str, SimInstance] = {}
        self.messages: dict[str, SimMessage] = {}
        self.contacts: dict[str, SimContact] = {}
        self._by_owner: dict[str, list[SimInstance]] = {}  # owner_jid -> the instances scanned as it (see scan)
        self.webhooks = WebhookDispatcher(config, self.rng)
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls: list[tuple[str, str]] = []  # (method, path) of every Evolution route called

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.webhooks.stop()

    # -- plumbing -------------------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], inst: SimInstance | None = None) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if inst is not None:
            inst.tasks.add(task)
            task.add_done_callback(inst.tasks.discard)
        return task

    def _cancel(self, inst: SimInstance) -> None:
        current = asyncio.current_task()
        for task in list(inst.tasks):
            if task is not current:
                task.cancel()

    def emit(self, inst: SimInstance, event: str, data: Any, *, ignore_filter: bool = False) -> list[Delivery]:
        return self.webhooks.emit(inst, event, data, ignore_filter=ignore_filter)

    def on_whatsapp(self, number: str) -> bool:
        digits = digits_of(number)
        return 8 <= len(digits) <= 15 and digits not in self.config.absent_numbers and not digits.endswith("0" * 7)

    def instance_by_phone(self, number: str) -> SimInstance | None:
        """The open instance whose account is this phone, if any."""
        jid = pn_jid(number)
        owners = self._by_owner.get(jid)
        if not owners:
            return None
        if len(owners) == 1:
            inst = owners[0]
            return inst if inst.state == "open" and self.instances.get(inst.name) is inst else None
        # one phone scanned into several instances: the first open one in creation order, as Evolution finds it
        return next((i for i in self.instances.values() if i.state == "open" and i.owner_jid == jid), None)

    def _own(self, inst: SimInstance, jid: str | None) -> None:
        """Set the instance's owner_jid, keeping the owner index (instance_by_phone) in step."""
        self._unindex(inst)
        inst.owner_jid = jid
        if jid is not None:
            self._by_owner.setdefault(jid, []).append(inst)

    def _unindex(self, inst: SimInstance) -> None:
        owners = self._by_owner.get(inst.owner_jid or "")
        if owners is not None:
            owners[:] = [i for i in owners if i is not inst]
            if not owners:
                del self._by_owner[inst.owner_jid or ""]

    def contact(self, number: str) -> SimContact:
        digits = digits_of(number)
        if digits not in self.contacts:
            self.contacts[digits] = contact_for(digits, self.config.human)
        return self.contacts[digits]

    # -- lifecycle --------------------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        token: str | None,
        integration: str,
        settings: dict[str, Any],
        webhook: dict[str, Any] | None,
        number: str | None,
        qrcode: bool,
    ) -> SimInstance:
        inst = SimInstance(
            name=name,
            instance_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            token=token or str(uuid.UUID(int=self.rng.getrandbits(128), version=4)).upper(),
            integration=integration,
            settings=settings,
            number=digits_of(number) if number else None,
        )
        if webhook is not None:
            inst.webhook = self.make_webhook(inst, webhook, existing=None)
        self.instances[name] = inst
        self.emit(inst, "instance.create", {"instanceName": name, "instanceId": inst.instance_id})
        if qrcode and integration == "WHATSAPP-BAILEYS":
            self.start_connecting(inst)
        return inst

    def make_webhook(self, inst: SimInstance, body: dict[str, Any], existing: SimWebhook | None) -> SimWebhook:
        """Evolution's upsert of the Webhook row; `events: []` means every event, `enabled: false` none."""
        enabled = bool(body.get("enabled", True))
        events = list(body.get("events") or [])
        if not events:
            events = list(ALL_EVENTS)
        if not enabled:
            events = []
        headers = body.get("headers") or {}
        hook = SimWebhook(
            id=existing.id if existing else cuid(self.rng),
            url=str(body.get("url") or ""),
            headers={str(k): str(v) for k, v in headers.items()},
            enabled=enabled,
            events=events,
            by_events=bool(body.get("byEvents", False)),
            base64=bool(body.get("base64", False)),
            instance_id=inst.instance_id,
            created_at=existing.created_at if existing else now_iso(),
        )
        return hook

    def start_connecting(self, inst: SimInstance, number: str | None = None) -> None:
        """A Baileys socket opens: `connecting`, then a QR every qr_interval_s until scanned or the limit."""
        if number:
            inst.number = digits_of(number)
        inst.state = "connecting"
        inst.qr_count, inst.qr_code, inst.qr_base64, inst.pairing_code = 0, None, None, None
        self.emit(inst, "connection.update", {"instance": inst.name, "state": "connecting", "statusReason": 200})
        if self.config.qr_first_delay_s <= 0:
            self._new_qr(inst)
        self.spawn(self._qr_loop(inst, first_done=self.config.qr_first_delay_s <= 0), inst)
        if self.config.scan_after_s is not None:
            self.spawn(self._auto_scan(inst, self.config.scan_after_s), inst)

    def _new_qr(self, inst: SimInstance) -> None:
        inst.qr_count += 1
        inst.qr_code = qr_string(self.rng)
        inst.qr_base64 = png_data_url(inst.qr_code)
        inst.pairing_code = pairing_code(self.rng) if inst.number else None
        qr = {"instance": inst.name, "pairingCode": inst.pairing_code, "code": inst.qr_code, "base64": inst.qr_base64}
        self.emit(inst, "qrcode.updated", {"qrcode": qr})

    async def _qr_loop(self, inst: SimInstance, *, first_done: bool) -> None:
        if not first_done:
            await asyncio.sleep(self.config.qr_first_delay_s)
            if inst.state != "connecting":
                return
            self._new_qr(inst)
        while True:
            await asyncio.sleep(self.config.qr_interval_s)
            if inst.state != "connecting":
                return
            if inst.qr_count >= self.config.qr_limit:
                await self._qr_limit_reached(inst)
                return
            self._new_qr(inst)

    async def _qr_limit_reached(self, inst: SimInstance) -> None:
        """QRCODE_LIMIT: say so, go `refused` for a moment, then log out to `close` with the count reset."""
        self.emit(inst, "qrcode.updated", {"message": "QR code limit reached, please login again", "statusCode": 500})
        inst.state = "refused"
        self.emit(inst, "connection.update", {"instance": inst.name, "state": "refused", "statusReason": 428})
        await asyncio.sleep(self.config.refused_hold_s)
        if inst.state == "refused":
            inst.state = "close"
            inst.qr_count, inst.qr_code, inst.qr_base64, inst.pairing_code = 0, None, None, None

    async def _auto_scan(self, inst: SimInstance, after: float) -> None:
        await asyncio.sleep(after)
        if inst.state == "connecting" and inst.qr_code:
            self.scan(inst)

    def phone_for(self, inst: SimInstance, number: str | None = None) -> str:
        """Who scans: the given number, the pairing number, the configured phone, or a stable made-up one."""
        if number:
            return digits_of(number)
        if inst.number:
            return inst.number
        if inst.name in self.config.phones:
            return digits_of(self.config.phones[inst.name])
        h = int(hashlib.sha256(inst.name.encode()).hexdigest(), 16)
        return f"55119{h % 10**8:08d}"

    def scan(self, inst: SimInstance, number: str | None = None) -> None:
        """The phone scanned the QR (or typed the pairing code): the instance is `open` as that number."""
        if inst.state != "connecting":
            raise SimRefusal(409, [f'The "{inst.name}" instance is {inst.state}: call /instance/connect first'])
        phone = self.phone_for(inst, number)
        self._cancel(inst)
        inst.state = "open"
        jid = phone + PN_SUFFIX
        self._own(inst, jid)
        inst.wuid = jid
        inst.profile_name = inst.profile_name or f"Sim {phone[-4:]}"
        inst.qr_count, inst.qr_code, inst.qr_base64, inst.pairing_code = 0, None, None, None
        inst.disconnection_code, inst.disconnection_at = None, None
        inst.updated_at = now_iso()
        self.emit(
            inst,
            "connection.update",
            {
                "instance": inst.name,
                "wuid": jid,
                "profileName": inst.profile_name,
                "profilePictureUrl": profile_picture(jid),
                "state": "open",
                "statusReason": 200,
            },
        )

    def logout(self, inst: SimInstance, status_reason: int = 401) -> None:
        """A permanent close: status.instance, logout.instance, connection.update close (in that order)."""
        self._cancel(inst)
        inst.disconnection_code, inst.disconnection_at = status_reason, now_iso()
        reason = {"error": {"output": {"statusCode": status_reason}}, "date": inst.disconnection_at}
        self.emit(
            inst,
            "status.instance",
            {
                "instance": inst.name,
                "status": "closed",
                "disconnectionAt": inst.disconnection_at,
                "disconnectionReasonCode": status_reason,
                "disconnectionObject": json.dumps(reason),
            },
        )
        self.emit(inst, "logout.instance", None)
        self.emit(inst, "connection.update", {"instance": inst.name, "state": "close", "statusReason": status_reason})
        inst.state = "close"
        self._own(inst, None)
        inst.qr_count, inst.qr_code, inst.qr_base64, inst.pairing_code = 0, None, None, None
        inst.updated_at = now_iso()

    def delete(self, inst: SimInstance) -> None:
        if inst.state in ("open", "connecting"):
            self.logout(inst)
        self._cancel(inst)
        self.emit(inst, "instance.delete", {"instanceName": inst.name, "instanceId": inst.instance_id})
        self.emit(inst, "remove.instance", None)
        self._unindex(inst)
        self.instances.pop(inst.name, None)

    def restart(self, inst: SimInstance) -> dict[str, Any] | None:
        """open: reconnect with the saved session; connecting: a new QR series; close: Evolution's 200 error;
        refused: nothing at all (restartInstance has no branch for it and answers an empty 200)."""
        if inst.state == "open":
            self.emit(inst, "connection.update", {"instance": inst.name, "state": "connecting", "statusReason": 200})
            inst.state = "connecting"
            self.spawn(self._reopen(inst), inst)
            return {"instance": {"instanceName": inst.name, "state": "connecting"}}
        if inst.state == "connecting":
            self._cancel(inst)
            self.start_connecting(inst)
            return inst.qr_object()
        if inst.state == "refused":
            return None
        return {"error": True, "message": "[object Object]"}

    async def _reopen(self, inst: SimInstance) -> None:
        await asyncio.sleep(self.config.scaled(0.5))
        if inst.state == "connecting" and inst.owner_jid:
            self.scan(inst, inst.owner_jid)

    # -- messages ----------------------------------------------------------------------------------------------

    def check_recipient(self, number: str) -> str:
        """The JID for `number`, or the refusal Evolution answers (not on WhatsApp, unknown group)."""
        if number.endswith("@g.us") or (number.isdigit() and len(number) >= 18):
            raise SimRefusal(400, ["[object Object]"])  # not a member: Evolution re-wraps 'Group not found'
        if "@" in number and not number.endswith(PN_SUFFIX):
            return number  # @lid and status@broadcast pass through
        if not self.on_whatsapp(number):
            digits = digits_of(number)
            raise SimRefusal(400, [{"jid": digits + PN_SUFFIX, "exists": False, "number": digits}])
        return pn_jid(number)

    async def send_text(
        self, inst: SimInstance, number: str, text: str, *, delay_ms: int, quoted_id: str | None
    ) -> dict[str, Any]:
        if inst.state != "open":
            raise SimRefusal(400, ["Error: Connection Closed"])
        jid = self.check_recipient(number)
        if delay_ms > 0:
            await asyncio.sleep(self.config.scaled(delay_ms / 1000))
        msg = SimMessage(
            id=baileys_id(self.rng),
            from_instance=inst.name,
            to_jid=jid,
            text=text,
            timestamp=epoch(),
            quoted_id=quoted_id,
        )
        self.messages[msg.id] = msg
        inst.messages += 1
        inst.contacts.add(jid)
        body = self._prepared(inst, msg)
        self.emit(inst, "send.message", body)
        receiver = self.instance_by_phone(jid) if jid.endswith(PN_SUFFIX) else None
        if receiver is not None:
            msg.to_instance = receiver.name
            self.spawn(self._deliver_to_instance(inst, receiver, msg))
        elif jid.endswith(PN_SUFFIX):
            self.spawn(self._deliver_to_human(inst, msg))
        return body

    def _context(self, msg: SimMessage, quoted_participant: str | None) -> dict[str, Any]:
        ctx: dict[str, Any] = {
            "mentionedJid": [],
            "groupMentions": [],
            "ephemeralSettingTimestamp": {"low": msg.timestamp - 172_800, "high": 0, "unsigned": False},
            "disappearingMode": {"initiator": 0},
        }
        if msg.quoted_id:
            quoted = self.messages.get(msg.quoted_id)
            ctx |= {
                "stanzaId": msg.quoted_id,
                "participant": quoted_participant,
                "quotedMessage": {"conversation": quoted.text if quoted else ""},
            }
        return ctx

    def _prepared(self, inst: SimInstance, msg: SimMessage) -> dict[str, Any]:
        """`prepareMessage(messageSent)`: the sendText answer and the send.message data."""
        return {
            "key": {"remoteJid": msg.to_jid, "fromMe": True, "id": msg.id},
            "pushName": "Você",
            "status": "PENDING",
            "message": {"conversation": msg.text},
            "contextInfo": self._context(msg, msg.to_jid),
            "messageType": "conversation",
            "messageTimestamp": msg.timestamp,
            "instanceId": inst.instance_id,
            "source": "web",
        }

    async def _deliver_to_instance(self, sender: SimInstance, receiver: SimInstance, msg: SimMessage) -> None:
        await asyncio.sleep(0.01)
        data: dict[str, Any] = {
            "key": {"remoteJid": sender.owner_jid, "fromMe": False, "id": msg.id, "addressingMode": "pn"},
            "pushName": sender.profile_name or "",
            "status": "DELIVERY_ACK",
            "message": {"conversation": msg.text},
            "messageType": "conversation",
            "messageTimestamp": msg.timestamp,
            "instanceId": receiver.instance_id,
            "source": "web",
        }
        if msg.quoted_id:
            data["contextInfo"] = self._context(msg, receiver.owner_jid)
        receiver.messages += 1
        if sender.owner_jid:
            receiver.contacts.add(sender.owner_jid)
        self.emit(receiver, "messages.upsert", data)
        await asyncio.sleep(self.config.scaled(self.config.delivery_ack_after_s))
        self.update_status(msg, "DELIVERY_ACK")
        if receiver.settings.get("readMessages"):
            self.update_status(msg, "READ")
        elif self.config.read_after_s is not None:
            await asyncio.sleep(self.config.scaled(self.config.read_after_s))
            self.update_status(msg, "READ")

    async def _deliver_to_human(self, sender: SimInstance, msg: SimMessage) -> None:
        contact = self.contact(msg.to_jid)
        reply: Reply | None = decide_reply(contact, self.config.human, self.rng)
        await asyncio.sleep(self.config.scaled(self.config.delivery_ack_after_s))
        self.update_status(msg, "DELIVERY_ACK")
        waited = self.config.delivery_ack_after_s
        read_at = self.config.read_after_s
        if reply is not None:
            read_at = reply.delay_s if read_at is None else min(read_at, reply.delay_s)
        if read_at is not None:
            await asyncio.sleep(self.config.scaled(max(0.0, read_at - waited)))
            self.update_status(msg, "READ")
            waited = max(waited, read_at)
        if reply is not None:
            await asyncio.sleep(self.config.scaled(max(0.0, reply.delay_s - waited)))
            if sender.state == "open" and sender.name in self.instances:
                self.human_says(contact, sender, reply.text)

    def update_status(self, msg: SimMessage, status: str) -> None:
        """messages.update to the sender, never going backwards (READ is not followed by DELIVERY_ACK)."""
        if _STATUS_RANK.get(status, 0) <= _STATUS_RANK.get(msg.status, 0):
            return
        msg.status = status
        msg.read = msg.read or status == "READ"
        sender = self.instances.get(msg.from_instance)
        if sender is None:
            return
        row_id = "cm" + hashlib.sha256(msg.id.encode()).hexdigest()[:23]
        data = {
            "keyId": msg.id,
            "remoteJid": msg.to_jid,
            "fromMe": True,
            "status": status,
            "instanceId": sender.instance_id,
            "messageId": row_id,
        }
        self.emit(sender, "messages.update", data)

    def epoch_now(self) -> int:
        """Seconds since the epoch for a message's timestamp (the virtual-time world answers its own clock)."""
        return epoch()

    def human_says(self, contact: SimContact, inst: SimInstance, text: str) -> dict[str, Any]:
        """A person writes to an instance: messages.upsert (PN, or @lid with the phone in remoteJidAlt)."""
        pn = contact.number + PN_SUFFIX
        msg_id = android_id(self.rng)
        if contact.lid:
            key: dict[str, Any] = {
                "remoteJid": contact.lid,
                "remoteJidAlt": pn,
                "fromMe": False,
                "id": msg_id,
                "addressingMode": "lid",
            }
        else:
            key = {"remoteJid": pn, "fromMe": False, "id": msg_id, "addressingMode": "pn"}
        data = {
            "key": key,
            "pushName": contact.name,
            "status": "DELIVERY_ACK",
            "message": {"conversation": text},
            "messageType": "conversation",
            "messageTimestamp": self.epoch_now(),
            "instanceId": inst.instance_id,
            "source": "android",
        }
        inst.messages += 1
        inst.contacts.add(pn)
        self.emit(inst, "messages.upsert", data)
        return data

    def phone_sends(self, inst: SimInstance, number: str, text: str) -> dict[str, Any]:
        """The account's owner types on the phone: messages.upsert with fromMe true (not send.message)."""
        jid = pn_jid(number)
        data = {
            "key": {"remoteJid": jid, "fromMe": True, "id": "3A" + android_id(self.rng)[:18], "addressingMode": "pn"},
            "pushName": "Você",
            "status": "SERVER_ACK",
            "message": {"conversation": text},
            "messageType": "conversation",
            "messageTimestamp": epoch(),
            "instanceId": inst.instance_id,
            "source": "ios",
        }
        inst.messages += 1
        inst.contacts.add(jid)
        self.emit(inst, "messages.upsert", data)
        return data

    def mark_read(self, inst: SimInstance, keys: list[dict[str, Any]]) -> None:
        """Only PN and group keys are honoured (Evolution silently drops `@lid` keys)."""
        for key in keys:
            jid = str(key.get("remoteJid", ""))
            if not (jid.endswith(PN_SUFFIX) or jid.endswith("@g.us")):
                continue
            msg = self.messages.get(str(key.get("id", "")))
            if msg is not None and msg.to_instance == inst.name:
                self.update_status(msg, "READ")

    async def presence(self, inst: SimInstance, number: str, presence: str, delay_ms: int) -> None:
        if inst.state != "open":
            raise SimRefusal(400, ["[object Object]"])
        try:
            self.check_recipient(number)
        except SimRefusal as e:
            raise SimRefusal(400, ["[object Object]"]) from e  # the check runs inside the try here
        if delay_ms > 0:
            await asyncio.sleep(self.config.scaled(delay_ms / 1000))

    def whatsapp_numbers(self, numbers: list[str]) -> list[dict[str, Any]]:
        """Broadcast first, then groups, then users, like Evolution orders them."""
        broadcast, groups, users = [], [], []
        for n in numbers:
            if n.endswith("@broadcast"):
                broadcast.append({"jid": n, "exists": True, "number": n})
            elif n.endswith("@g.us"):
                groups.append({"jid": n, "exists": True, "number": n, "name": "Grupo Simulado"})
            elif n.endswith("@lid"):
                users.append({"jid": n, "exists": True, "number": n, "lid": "lid"})
            else:
                digits = digits_of(n)
                row: dict[str, Any] = {"jid": digits + PN_SUFFIX, "exists": self.on_whatsapp(digits), "number": digits}
                if row["exists"]:
                    owner = self.instance_by_phone(digits)
                    row["name"] = owner.profile_name if owner else self.contact(digits).name
                users.append(row)
        return broadcast + groups + users
