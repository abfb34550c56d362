"""The Evolution simulator in virtual time: the same routes, bodies and people, with every wait on the event heap.

`VirtualWorld` keeps everything `SimWorld` does on a request (validation, ids from the seeded generator, the
`sendText` answer) and replaces its sleeps: a send's webhooks, the receiver's copy, delivery and read receipts and
a person's reply are pushed onto the heap at their virtual instant. Webhooks are posted to Mirage's webhook
service by the driver, one at a time, in that order, so a seed gives one history.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from mirage.engine.clock import SettableClock
from mirage.integrations.evolution_sim.config import SimConfig
from mirage.integrations.evolution_sim.humans import decide_reply
from mirage.integrations.evolution_sim.state import (
    PN_SUFFIX,
    SimInstance,
    SimMessage,
    baileys_id,
    event_key,
    event_suffix,
)
from mirage.integrations.evolution_sim.webhooks import Delivery, request_headers
from mirage.integrations.evolution_sim.world import SimRefusal, SimWorld
from mirage.simulation.events import EventHeap

log = logging.getLogger(__name__)

_HTTP_URL = re.compile(r"^(https?://)")

# (url, body bytes, headers, event) -> HTTP status of the delivery (None: the request failed).
Poster = Callable[[str, bytes, dict[str, str], str], "int | None"]


class VirtualWorld(SimWorld):
    """A SimWorld whose waits happen on `heap` at `clock`'s virtual instants, and whose webhooks `post` delivers."""

    def __init__(self, config: SimConfig, clock: SettableClock, heap: EventHeap, post: Poster) -> None:
        super().__init__(config)
        self.clock = clock
        self.heap = heap
        self.post = post
        self.delivered = 0
        self._qr_generation: dict[str, int] = {}  # instance -> its current QR loop (see _qr_loop)
        self.failed: list[tuple[str, str, int | None]] = []  # (event, instance, last status) given up on

    # -- time -----------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def later(self, seconds: float, label: str, action: Callable[[], None]) -> None:
        self.heap.push(self.now() + timedelta(seconds=max(0.0, seconds)), label, action)

    def _iso(self) -> str:
        return self.now().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    # -- QR codes -------------------------------------------------------------------------------------------

    async def _qr_loop(self, inst: SimInstance, *, first_done: bool) -> None:
        """SimWorld's QR refreshes (first QR, a new one every `qr_interval_s`, the QRCODE_LIMIT), on the heap in
        virtual time instead of wall sleeps: connecting a fleet takes wall minutes, and each refresh renders a PNG
        and draws from the simulator's seeded generator, so wall-timed refreshes would load the simulator's event
        loop and make a run depend on wall time. A new loop (another `connect`) ends the previous one."""
        generation = self._qr_generation[inst.name] = self._qr_generation.get(inst.name, 0) + 1
        cfg = self.config

        def current() -> bool:
            return self._qr_generation.get(inst.name) == generation and inst.state == "connecting"

        def refresh() -> None:
            if not current():
                return
            if inst.qr_count >= cfg.qr_limit:
                self._virtual_qr_limit(inst)
                return
            self._new_qr(inst)
            self.later(cfg.qr_interval_s, f"qr {inst.name}", refresh)

        def first() -> None:
            if current():
                self._new_qr(inst)
                self.later(cfg.qr_interval_s, f"qr {inst.name}", refresh)

        if first_done:
            self.later(cfg.qr_interval_s, f"qr {inst.name}", refresh)
        else:
            self.later(cfg.qr_first_delay_s, f"qr {inst.name}", first)

    def _virtual_qr_limit(self, inst: SimInstance) -> None:
        """SimWorld._qr_limit_reached on the heap: say so, `refused` for `refused_hold_s`, then `close`."""
        self.emit(inst, "qrcode.updated", {"message": "QR code limit reached, please login again", "statusCode": 500})
        inst.state = "refused"
        self.emit(inst, "connection.update", {"instance": inst.name, "state": "refused", "statusReason": 428})

        def close() -> None:
            if inst.state == "refused":
                inst.state = "close"
                inst.qr_count, inst.qr_code, inst.qr_base64, inst.pairing_code = 0, None, None, None

        self.later(self.config.refused_hold_s, f"qr limit {inst.name}", close)

    # -- webhooks -------------------------------------------------------------------------------------------

    def emit(self, inst: SimInstance, event: str, data: Any, *, ignore_filter: bool = False) -> list[Delivery]:
        """As WebhookDispatcher.emit decides (enabled, subscribed, http URL, byEvents), but delivered by the driver."""
        hook = inst.webhook
        if hook is None or not hook.enabled or (not ignore_filter and event_key(event) not in hook.events):
            return []
        url = self.config.webhook_url_override or hook.url
        if not _HTTP_URL.match(url):
            return []
        if hook.by_events:
            url = f"{url.rstrip('/')}/{event_suffix(event)}"
        body = self.webhooks.envelope(inst, event, data)
        body["date_time"] = self._iso()
        content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = request_headers(hook.headers)
        self.later(0, f"webhook {event} {inst.name}", lambda: self._deliver(url, content, headers, event, inst.name, 1))
        return []

    def _deliver(self, url: str, content: bytes, headers: dict[str, str], event: str, name: str, attempt: int) -> None:
        status = self.post(url, content, headers, event)
        if status is not None and 200 <= status < 300:
            self.delivered += 1
            return
        cfg = self.config
        if (status is not None and status in cfg.non_retryable) or attempt >= cfg.webhook_max_attempts:
            self.failed.append((event, name, status))
            log.info("simulated webhook given up", extra={"event": event, "instance": name, "status": status})
            return
        wait = min(cfg.webhook_initial_delay_s * 2 ** (attempt - 1), cfg.webhook_max_delay_s)
        self.later(
            wait, f"webhook retry {event}", lambda: self._deliver(url, content, headers, event, name, attempt + 1)
        )

    # -- messages -------------------------------------------------------------------------------------------

    async def send_text(
        self, inst: SimInstance, number: str, text: str, *, delay_ms: int, quoted_id: str | None
    ) -> dict[str, Any]:
        """Accepted now; Evolution's typing `delay` passes on the heap before the message leaves."""
        if inst.state != "open":
            raise SimRefusal(400, ["Error: Connection Closed"])
        jid = self.check_recipient(number)
        leaves = self.now() + timedelta(milliseconds=max(0, delay_ms))
        msg = SimMessage(
            id=baileys_id(self.rng),
            from_instance=inst.name,
            to_jid=jid,
            text=text,
            timestamp=int(leaves.timestamp()),
            quoted_id=quoted_id,
        )
        self.messages[msg.id] = msg
        inst.messages += 1
        inst.contacts.add(jid)
        body = self._prepared(inst, msg)
        self.later(delay_ms / 1000, f"message leaves {inst.name}", lambda: self._leaves(inst, msg, body))
        return body

    def _leaves(self, inst: SimInstance, msg: SimMessage, body: dict[str, Any]) -> None:
        self.emit(inst, "send.message", body)
        receiver = self.instance_by_phone(msg.to_jid) if msg.to_jid.endswith(PN_SUFFIX) else None
        if receiver is not None:
            msg.to_instance = receiver.name
            self._reaches_instance(inst, receiver, msg)
        elif msg.to_jid.endswith(PN_SUFFIX):
            self._reaches_human(inst, msg)

    def _reaches_instance(self, sender: SimInstance, receiver: SimInstance, msg: SimMessage) -> None:
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
        ack = self.config.delivery_ack_after_s
        self.later(ack, "delivery ack", lambda: self.update_status(msg, "DELIVERY_ACK"))
        if receiver.settings.get("readMessages"):
            self.later(ack, "read", lambda: self.update_status(msg, "READ"))
        elif self.config.read_after_s is not None:
            self.later(ack + self.config.read_after_s, "read", lambda: self.update_status(msg, "READ"))

    def _reaches_human(self, sender: SimInstance, msg: SimMessage) -> None:
        contact = self.contact(msg.to_jid)
        reply = decide_reply(contact, self.config.human, self.rng)
        ack = self.config.delivery_ack_after_s
        self.later(ack, "delivery ack", lambda: self.update_status(msg, "DELIVERY_ACK"))
        read_at = self.config.read_after_s
        if reply is not None:
            read_at = reply.delay_s if read_at is None else min(read_at, reply.delay_s)
        if read_at is not None:
            self.later(max(ack, read_at), "read", lambda: self.update_status(msg, "READ"))
        if reply is not None:
            text = reply.text

            def answer() -> None:
                if sender.state == "open" and sender.name in self.instances:
                    self.human_says(contact, sender, text)

            self.later(max(ack, reply.delay_s), f"{contact.name} answers", answer)

    def epoch_now(self) -> int:
        """A message's timestamp on the virtual clock (SimWorld.human_says and the rest stay as they are)."""
        return int(self.now().timestamp())
