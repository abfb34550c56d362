"""Instance lifecycle: provision a number's Evolution instance, refresh its status, deprovision it, link it.

Composes the HTTP steps of `mirage.integrations.evolution.lifecycle` / `onboarding` with the SQL of
`mirage.db.evolution_sessions`; the RQ jobs in `mirage.jobs.instances` and `mirage connect` call these.

All are idempotent. Provision stores the session (with a token Mirage chose) before calling Evolution, so
a crash or a retry finds the session and finishes the job: 404 -> create again, 403 "name already in use" ->
adopt the instance Evolution already has (fetch its token with the global key, install Mirage's webhook).
A per-number advisory lock keeps two provisioners (a job and `mirage connect`) from racing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

from mirage.db import evolution_sessions as store
from mirage.db.evolution_sessions import Conn, NumberRow, Session
from mirage.errors import TemporaryError
from mirage.integrations.evolution import lifecycle as http
from mirage.integrations.evolution import onboarding
from mirage.integrations.evolution.client import EvolutionClient
from mirage.integrations.evolution.errors import EvolutionClientError
from mirage.integrations.evolution.lifecycle import ClientFactory, default_client
from mirage.integrations.evolution.models import QrCode
from mirage.integrations.evolution.naming import instance_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a lifecycle step did (returned by the RQ jobs, so it shows in `rq info` / job results)."""

    action: str  # created | adopted | exists | refreshed | deprovisioned | skipped
    state: str | None = None
    instance: str | None = None
    session_id: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def provision(
    conn: Conn, number_id: str | uuid.UUID, *, client_factory: ClientFactory = default_client, lock_wait_s: float = 0.0
) -> Outcome:
    """Make sure the number has a live session and Evolution has its instance with Mirage's webhook."""
    number = store.load_number(conn, number_id)
    if number is None:
        log.info("provision: number no longer exists", extra={"number_id": str(number_id)})
        return Outcome("skipped", detail="number not found")
    with store.number_lock(conn, number.id, wait_s=lock_wait_s):
        access = store.evolution_access(conn, number.tenant_id)
        session = store.live_session(conn, number.id)
        if session is not None and session.base_url.rstrip("/") != access.base_url.rstrip("/"):
            _leave_old_server(conn, session, access.api_key)
            session = None
        if session is None:
            name = instance_name(number.tenant_slug, number.key)
            session = store.insert_session(conn, number, instance_name=name, base_url=access.base_url)
            with client_factory(access.base_url, access.api_key) as client:
                return _create(conn, client, number, session)
        with client_factory(session.base_url, access.api_key) as client:
            return _ensure(conn, client, number, session)


def _leave_old_server(conn: Conn, session: Session, api_key: str | None) -> None:
    """The tenant now points at another Evolution server: retire the session on the old one.

    The number then gets a new instance on the new server, which needs a new QR scan: WhatsApp sessions
    cannot move between servers.
    """
    log.warning(
        "evolution base URL changed: moving the instance to the new server (a new QR scan is needed)",
        extra={"instance": session.instance_name, "old_base_url": session.base_url},
    )
    http.leave_server(session, api_key)
    store.mark_deprovisioned(conn, session, status="pending")


def _create(conn: Conn, client: EvolutionClient, number: NumberRow, session: Session) -> Outcome:
    try:
        created = client.create_instance(session.instance_name, webhook=http.webhook_for(session), token=session.token)
    except EvolutionClientError as e:
        if e.is_name_in_use:
            return _adopt(conn, client, session)
        store.record_state(conn, session, "close", status="error", reason=str(e))
        raise
    state = created.status if created.status in ("open", "connecting", "close") else "connecting"
    store.record_state(conn, session, state, instance_id=created.instance_id, qr=created.qr)
    log.info("evolution instance created", extra={"instance": session.instance_name, "number": number.target})
    return Outcome("created", state, session.instance_name, str(session.id))


def _adopt(conn: Conn, client: EvolutionClient, session: Session) -> Outcome:
    """Evolution already has an instance with this name (an earlier run, or a lost session row): take it over."""
    info = http.existing_instance(client, session)
    if info.token != session.token:
        log.warning("adopting an existing Evolution instance", extra={"instance": session.instance_name})
        store.set_token(conn, session, str(info.token))
    http.install_webhook(client, session)
    store.record_state(conn, session, info.state, instance_id=info.instance_id)
    return Outcome("adopted", info.state, session.instance_name, str(session.id))


def _ensure(conn: Conn, client: EvolutionClient, number: NumberRow, session: Session) -> Outcome:
    """A live session exists: check the instance is still there, re-assert the webhook, record the state."""
    try:
        state = client.connection_state(session.instance_name, token=session.token)
    except EvolutionClientError as e:
        if e.is_not_found:
            log.warning("evolution instance missing: creating it again", extra={"instance": session.instance_name})
            return _create(conn, client, number, session)
        if e.is_unauthorized:
            return _adopt(conn, client, session)
        raise
    http.install_webhook(client, session)
    store.record_state(conn, session, state)
    return Outcome("exists", state, session.instance_name, str(session.id))


def refresh(conn: Conn, session_id: str | uuid.UUID, *, client_factory: ClientFactory = default_client) -> Outcome:
    """Ask Evolution for the session's state (and current QR while connecting) and store it."""
    session = store.load_session(conn, session_id)
    if session is None or session.deprovisioned_at is not None:
        return Outcome("skipped", detail="session not found or deprovisioned")
    number = store.load_number(conn, session.number_id) if session.number_id else None
    access = store.evolution_access(conn, session.tenant_id)
    with client_factory(session.base_url, access.api_key) as client:
        try:
            state = client.connection_state(session.instance_name, token=session.token)
        except EvolutionClientError as e:
            if not e.is_not_found:
                raise
            store.record_state(conn, session, "close", status="removed", reason="instance not found in Evolution")
            return Outcome("refreshed", "removed", session.instance_name, str(session.id))
        qr = http.current_qr(client, session) if state == "connecting" else None
        store.record_state(conn, session, state, qr=qr)
    log.info(
        "evolution session refreshed",
        extra={"instance": session.instance_name, "state": state, "number": number.target if number else None},
    )
    return Outcome("refreshed", state, session.instance_name, str(session.id))


def deprovision(conn: Conn, session_id: str | uuid.UUID, *, client_factory: ClientFactory = default_client) -> Outcome:
    """Log the instance out and delete it; a missing or already-closed instance is fine."""
    session = store.load_session(conn, session_id)
    if session is None or session.deprovisioned_at is not None:
        return Outcome("skipped", detail="session not found or already deprovisioned")
    access = store.evolution_access(conn, session.tenant_id)
    with client_factory(session.base_url, access.api_key) as client:
        http.remove_instance(client, session)
    store.mark_deprovisioned(conn, session)
    log.info("evolution instance deleted", extra={"instance": session.instance_name})
    return Outcome("deprovisioned", "close", session.instance_name, str(session.id))


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
    provision(conn, number.id, client_factory=client_factory, lock_wait_s=30.0)
    session = store.live_session(conn, number.id)
    if session is None:
        raise TemporaryError(f"{number.target}: no session after provisioning")
    access = store.evolution_access(conn, number.tenant_id)
    name = session.instance_name
    with client_factory(session.base_url, access.api_key) as client:
        steps = onboarding.follow(
            client,
            name,
            session.token,
            pairing_number=number.wa_number if pairing else None,
            timeout_s=timeout_s,
            poll_s=poll_s,
            clock=clock,
            sleep=sleep,
        )
        for step in steps:
            match step:
                case onboarding.Shown(qr=qr):
                    store.record_state(conn, session, "connecting", qr=qr)
                    on_qr(qr)
                case onboarding.Linked(count=count, phone=phone, instance_id=instance_id):
                    store.record_state(conn, session, "open", instance_id=instance_id)
                    return LinkResult("open", phone, count, name)
                case onboarding.GaveUp(count=count):
                    store.record_state(conn, session, "refused", status="refused", reason="QR code limit reached")
                    return LinkResult("refused", None, count, name)
                case onboarding.TimedOut(count=count):
                    return LinkResult("timeout", None, count, name)
    raise TemporaryError(f"{number.target}: following the QRs ended without an answer")  # follow always ends
