"""Linking a number to WhatsApp (`mirage connect`): make sure the instance exists, follow its QRs until `open`.

Evolution shows a new QR about every 45 s and gives up after ~30 (QRCODE_LIMIT): the state goes `refused`
for a moment and then `close`. Polling `connect` on a connecting instance starts nothing new, it returns the QR
being shown, so this loop polls `connect` + `connectionState` every `poll_s` and reports each new QR.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mirage.errors import TemporaryError
from mirage.integrations.evolution import lifecycle, store
from mirage.integrations.evolution.client import EvolutionClient
from mirage.integrations.evolution.lifecycle import ClientFactory, default_client
from mirage.integrations.evolution.models import ConnectResult, QrCode
from mirage.integrations.evolution.store import Conn, NumberRow, Session


@dataclass(frozen=True)
class LinkResult:
    """How linking ended: `open` (with the phone that scanned), `refused` (QR limit) or `timeout`."""

    state: str
    phone: str | None
    qr_count: int
    instance: str


def link(
    conn: Conn,
    number: NumberRow,
    *,
    timeout_s: float,
    poll_s: float = 2.0,
    pairing: bool = False,
    on_qr: Callable[[QrCode], None] = lambda qr: None,
    client_factory: ClientFactory = default_client,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> LinkResult:
    """Provision if needed, then show QRs (via `on_qr`) until the phone links, Evolution gives up, or timeout."""
    lifecycle.provision(conn, number.id, client_factory=client_factory, lock_wait_s=30.0)
    session = store.live_session(conn, number.id)
    if session is None:
        raise TemporaryError(f"{number.target}: no session after provisioning")
    access = store.evolution_access(conn, number.tenant_id)
    with client_factory(session.base_url, access.api_key) as client:
        return _follow(conn, client, session, number, timeout_s, poll_s, pairing, on_qr, clock, sleep)


def _follow(
    conn: Conn,
    client: EvolutionClient,
    session: Session,
    number: NumberRow,
    timeout_s: float,
    poll_s: float,
    pairing: bool,
    on_qr: Callable[[QrCode], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> LinkResult:
    name, token = session.instance_name, session.token
    pairing_number = number.wa_number if pairing else None
    deadline = clock() + timeout_s
    shown: str | None = None
    count = 0
    seen_connecting = False
    answer: ConnectResult | None = client.connect(name, token=token, number=pairing_number)
    while True:
        if answer is not None:
            if answer.state == "open":
                return _opened(conn, client, session, count)
            if answer.state == "refused" or (answer.qr is not None and answer.qr.count < count):
                return _refused(conn, session, count)  # a lower count: a new series, the last one ran out
            if answer.qr is not None and answer.qr.code != shown:
                shown, count = answer.qr.code, answer.qr.count
                store.record_state(conn, session, "connecting", qr=answer.qr)
                on_qr(answer.qr)
        if clock() >= deadline:
            return LinkResult("timeout", None, count, name)
        sleep(poll_s)
        state = client.connection_state(name, token=token)
        answer = None
        if state == "open":
            return _opened(conn, client, session, count)
        if state == "connecting":
            seen_connecting = True
            # On a connecting instance connect starts nothing: it returns the QR on screen. Asking only after
            # seeing `connecting` keeps this loop from starting a new series right after Evolution gave up.
            answer = client.connect(name, token=token, number=pairing_number)
        elif state == "refused" or seen_connecting or shown is not None:
            # Evolution hit its QR limit: `refused` briefly, then `close`. Connecting again would start a new
            # series nobody is looking at, so stop and let the operator retry.
            return _refused(conn, session, count)
        else:
            answer = client.connect(name, token=token, number=pairing_number)  # close, nothing shown yet: start


def _refused(conn: Conn, session: Session, count: int) -> LinkResult:
    store.record_state(conn, session, "refused", status="refused", reason="QR code limit reached")
    return LinkResult("refused", None, count, session.instance_name)


def _opened(conn: Conn, client: EvolutionClient, session: Session, count: int) -> LinkResult:
    rows = client.fetch_instances(instance_name=session.instance_name, token=session.token)
    info = next((r for r in rows if r.name == session.instance_name), None)
    phone = info.phone if info else None
    store.record_state(conn, session, "open", instance_id=info.instance_id if info else None)
    return LinkResult("open", phone, count, session.instance_name)
