"""The HTTP steps of an instance's lifecycle: create, adopt, check, install the webhook, log out and delete.

Nothing here touches the database: each step takes a client and the session's identity and secrets (any
object with the `Instance` attributes, e.g. `mirage.db.evolution_sessions.Session`) and returns what
Evolution said. `mirage.jobs.lifecycle` composes these steps with the SQL in `mirage.db.evolution_sessions`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from mirage.errors import TemporaryError
from mirage.integrations.evolution.client import NO_RETRY, EvolutionClient, RetryPolicy
from mirage.integrations.evolution.errors import EvolutionClientError, EvolutionServerError
from mirage.integrations.evolution.models import InstanceInfo, QrCode, WebhookConfig, webhook_url
from mirage.settings import get_settings

log = logging.getLogger(__name__)

ClientFactory = Callable[[str, str | None], EvolutionClient]

RETRY = RetryPolicy()  # read at call time, so a test (or a script) can make retries quicker


class Instance(Protocol):
    """What the HTTP steps need to know about a session."""

    @property
    def id(self) -> object: ...
    @property
    def instance_name(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def token(self) -> str | None: ...
    @property
    def webhook_secret(self) -> str | None: ...
    @property
    def jwt_key(self) -> str | None: ...


def default_client(base_url: str, api_key: str | None) -> EvolutionClient:
    return EvolutionClient(base_url, api_key, retry=RETRY)


def webhook_for(session: Instance) -> WebhookConfig:
    """The webhook Mirage installs on every instance (docs/evolution.md, "Webhook")."""
    if not session.webhook_secret or not session.jwt_key:
        raise TemporaryError(f"session {session.id} has no webhook secrets")
    return WebhookConfig(
        url=webhook_url(get_settings().public_url), secret=session.webhook_secret, jwt_key=session.jwt_key
    )


def existing_instance(client: EvolutionClient, session: Instance) -> InstanceInfo:
    """The instance Evolution already has under the session's name (fetched with the global key), with its token."""
    rows = client.fetch_instances(instance_name=session.instance_name)
    info = next((r for r in rows if r.name == session.instance_name), None)
    if info is None or not info.token:
        raise EvolutionServerError("GET", "/instance/fetchInstances", None, "instance reported in use but not listed")
    return info


def install_webhook(client: EvolutionClient, session: Instance) -> None:
    client.set_webhook(session.instance_name, webhook_for(session), token=session.token)


def current_qr(client: EvolutionClient, session: Instance) -> QrCode | None:
    """The QR being shown: `connect` on a connecting instance starts nothing new, it returns that QR."""
    return client.connect(session.instance_name, token=session.token).qr


def leave_server(session: Instance, api_key: str | None) -> None:
    """Log out and delete the session's instance on a server the tenant no longer uses; best effort.

    The old server may be gone for good (that is often why the URL changed), so failures are logged, not
    raised, after one quick try each: a server that is gone must not hold the move up for the retry budget.
    """
    with EvolutionClient(session.base_url, api_key, retry=NO_RETRY, timeout=5.0) as old:
        for call in (old.logout, old.delete_instance):
            try:
                call(session.instance_name, token=session.token)
            except (EvolutionClientError, EvolutionServerError) as e:
                log.info("old Evolution server did not take the call", extra={"reason": str(e)})


def remove_instance(client: EvolutionClient, session: Instance) -> None:
    """Log the instance out and delete it; a missing or already-closed instance is fine.

    A token Evolution no longer accepts is retried once with the global key.
    """
    token = session.token
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
