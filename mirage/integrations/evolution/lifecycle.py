"""Instance lifecycle: provision a number's Evolution instance, refresh its status, deprovision it.

All three are idempotent. Provision stores the session (with a token Mirage chose) before calling Evolution, so
a crash or a retry finds the session and finishes the job: 404 -> create again, 403 "name already in use" ->
adopt the instance Evolution already has (fetch its token with the global key, install Mirage's webhook).
A per-number advisory lock keeps two provisioners (a job and `mirage connect`) from racing.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from mirage.errors import TemporaryError
from mirage.integrations.evolution import store
from mirage.integrations.evolution.client import NO_RETRY, EvolutionClient, RetryPolicy
from mirage.integrations.evolution.errors import EvolutionClientError, EvolutionServerError
from mirage.integrations.evolution.models import QrCode, WebhookConfig, webhook_url
from mirage.integrations.evolution.naming import instance_name
from mirage.integrations.evolution.store import Conn, NumberRow, Session
from mirage.settings import get_settings

log = logging.getLogger(__name__)

ClientFactory = Callable[[str, str | None], EvolutionClient]


RETRY = RetryPolicy()  # read at call time, so a test (or a script) can make retries quicker


def default_client(base_url: str, api_key: str | None) -> EvolutionClient:
    return EvolutionClient(base_url, api_key, retry=RETRY)


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


def webhook_for(session: Session) -> WebhookConfig:
    """The webhook Mirage installs on every instance (docs/evolution.md, "Webhook")."""
    if not session.webhook_secret or not session.jwt_key:
        raise TemporaryError(f"session {session.id} has no webhook secrets")
    return WebhookConfig(
        url=webhook_url(get_settings().public_url), secret=session.webhook_secret, jwt_key=session.jwt_key
    )


@contextlib.contextmanager
def number_lock(conn: Conn, number_id: uuid.UUID, *, wait_s: float = 0.0) -> Iterator[None]:
    """A session-level advisory lock per number; TemporaryError if another provisioner holds it past `wait_s`."""
    key = f"mirage:provision:{number_id}"
    deadline = time.monotonic() + wait_s
    while True:
        row = conn.execute("select pg_try_advisory_lock(hashtextextended(%s, 0)) as ok", (key,)).fetchone()
        conn.commit()
        if row and row["ok"]:
            break
        if time.monotonic() >= deadline:
            raise TemporaryError(f"number {number_id} is being provisioned by another process", delay=5)
        time.sleep(0.2)
    try:
        yield
    finally:
        conn.rollback()
        conn.execute("select pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
        conn.commit()


def provision(
    conn: Conn, number_id: str | uuid.UUID, *, client_factory: ClientFactory = default_client, lock_wait_s: float = 0.0
) -> Outcome:
    """Make sure the number has a live session and Evolution has its instance with Mirage's webhook."""
    number = store.load_number(conn, number_id)
    if number is None:
        log.info("provision: number no longer exists", extra={"number_id": str(number_id)})
        return Outcome("skipped", detail="number not found")
    with number_lock(conn, number.id, wait_s=lock_wait_s):
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

    Best effort: the old server may be gone for good (that is often why the URL changed), so failures to
    log out or delete there are logged, not raised. The number then gets a new instance on the new server,
    which needs a new QR scan: WhatsApp sessions cannot move between servers.
    """
    log.warning(
        "evolution base URL changed: moving the instance to the new server (a new QR scan is needed)",
        extra={"instance": session.instance_name, "old_base_url": session.base_url},
    )
    # one quick try each: a server that is gone must not hold the move up for the retry budget
    with EvolutionClient(session.base_url, api_key, retry=NO_RETRY, timeout=5.0) as old:
        for call in (old.logout, old.delete_instance):
            try:
                call(session.instance_name, token=session.token)
            except (EvolutionClientError, EvolutionServerError) as e:
                log.info("old Evolution server did not take the call", extra={"reason": str(e)})
    store.mark_deprovisioned(conn, session, status="pending")


def _create(conn: Conn, client: EvolutionClient, number: NumberRow, session: Session) -> Outcome:
    try:
        created = client.create_instance(session.instance_name, webhook=webhook_for(session), token=session.token)
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
    rows = client.fetch_instances(instance_name=session.instance_name)
    info = next((r for r in rows if r.name == session.instance_name), None)
    if info is None or not info.token:
        raise EvolutionServerError("GET", "/instance/fetchInstances", None, "instance reported in use but not listed")
    if info.token != session.token:
        log.warning("adopting an existing Evolution instance", extra={"instance": session.instance_name})
        store.set_token(conn, session, info.token)
    client.set_webhook(session.instance_name, webhook_for(session), token=session.token)
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
    client.set_webhook(session.instance_name, webhook_for(session), token=session.token)
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
        qr: QrCode | None = None
        if state == "connecting":
            # connect on a connecting instance starts nothing new; it returns the QR being shown
            qr = client.connect(session.instance_name, token=session.token).qr
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
    token = session.token
    with client_factory(session.base_url, access.api_key) as client:
        for call in (client.logout, client.delete_instance):
            try:
                call(session.instance_name, token=token)
            except EvolutionClientError as e:
                if e.is_unauthorized and token is not None:
                    token = None  # the stored token no longer works: the global key may
                    try:
                        call(session.instance_name, token=None)
                    except EvolutionClientError as e2:
                        if e2.status not in (400, 404):
                            raise
                elif e.status not in (400, 404):  # 400: not connected (logout); 404: already gone
                    raise
    store.mark_deprovisioned(conn, session)
    log.info("evolution instance deleted", extra={"instance": session.instance_name})
    return Outcome("deprovisioned", "close", session.instance_name, str(session.id))
