"""Evolution API v2: the httpx client, its errors, the webhook config Mirage installs and instance naming.

Webhook *parsing* lives in `events.py` (ingest side); everything that calls Evolution lives here.
"""

from __future__ import annotations

from mirage.integrations.evolution.client import NO_RETRY, EvolutionClient, RetryPolicy
from mirage.integrations.evolution.errors import EvolutionClientError, EvolutionServerError
from mirage.integrations.evolution.models import (
    WEBHOOK_EVENTS,
    WEBHOOK_PATH,
    ConnectResult,
    CreatedInstance,
    InstanceInfo,
    NumberCheck,
    QrCode,
    SentMessage,
    WebhookConfig,
    to_evolution_number,
    webhook_url,
)
from mirage.integrations.evolution.naming import instance_name

__all__ = [
    "NO_RETRY",
    "WEBHOOK_EVENTS",
    "WEBHOOK_PATH",
    "ConnectResult",
    "CreatedInstance",
    "EvolutionClient",
    "EvolutionClientError",
    "EvolutionServerError",
    "InstanceInfo",
    "NumberCheck",
    "QrCode",
    "RetryPolicy",
    "SentMessage",
    "WebhookConfig",
    "instance_name",
    "to_evolution_number",
    "webhook_url",
]
