"""Where a tenant's model lives: t_settings_tenant.openai_base_url and the encrypted t_tenant_secrets key."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import psycopg

from mirage.crypto import keyring
from mirage.engine.generation.model import LLMConfig
from mirage.settings import Settings, get_settings

# The columns `llm_config_of` reads, for a statement joined from the tenant's row (`t`): its endpoint, and its
# encrypted key with the secret's id (the key's associated data).
MODEL_COLUMNS = "st.openai_base_url, ts.id as secret_id, ts.value_enc"
MODEL_JOINS = """
left join t_settings_tenant st on st.tenant_id = t.id
left join t_tenant_secrets ts on ts.tenant_id = t.id and ts.name = 'openai_api_key'"""


def llm_config(
    conn: psycopg.Connection[dict[str, Any]],
    tenant_id: uuid.UUID | str,
    *,
    model: str,
    temperature: float,
    settings: Settings | None = None,
) -> LLMConfig | None:
    """The tenant's openai.base_url / api_key, else OPENAI_BASE_URL / OPENAI_API_KEY; None when neither a key nor
    an endpoint is configured (the offline generator answers). Runs on the service connection."""
    row = conn.execute(
        f"select {MODEL_COLUMNS} from t_tenants t {MODEL_JOINS} where t.id = %s", (str(tenant_id),)
    ).fetchone()
    return llm_config_of(row, model=model, temperature=temperature, settings=settings)


def llm_config_of(
    row: Mapping[str, Any] | None, *, model: str, temperature: float, settings: Settings | None = None
) -> LLMConfig | None:
    """`llm_config` from a row of `MODEL_COLUMNS` already read (None: no tenant row)."""
    s = settings or get_settings()
    base_url = (row or {}).get("openai_base_url") or s.openai_base_url
    api_key: str | None = None
    if row and row.get("value_enc") is not None:
        api_key = keyring(s).decrypt(row["value_enc"], table="t_tenant_secrets", row_id=row["secret_id"], field="value")
    elif s.openai_api_key is not None:
        api_key = s.openai_api_key.get_secret_value()
    if api_key is None and base_url is None:
        return None
    return LLMConfig(
        model=model, temperature=float(temperature), api_key=api_key, base_url=base_url, timeout_s=s.openai_timeout_s
    )


# The conversation's model and temperature with its tenant's `MODEL_COLUMNS` (null when the conversation is gone).
CONVERSATION_MODEL = f"""
select c.id is not null as found, c.openai_model, c.temperature::float as temperature, {MODEL_COLUMNS}
  from (select 1) one
  left join t_conversations c on c.id = %(conversation)s
  left join t_tenants t on t.id = c.tenant_id {MODEL_JOINS}
"""


def conversation_llm_config(
    conn: psycopg.Connection[dict[str, Any]], conversation_id: uuid.UUID | str, *, settings: Settings | None = None
) -> LLMConfig | None:
    """`llm_config` for a conversation: its tenant's endpoint and key with the conversation's `openai_model` and
    `temperature`; None when the tenant has no model (or the conversation is gone). One statement."""
    row = conn.execute(CONVERSATION_MODEL, {"conversation": str(conversation_id)}).fetchone()
    return conversation_llm_config_of(row, settings=settings)


def conversation_llm_config_of(row: Mapping[str, Any] | None, *, settings: Settings | None = None) -> LLMConfig | None:
    """`conversation_llm_config` from a row of `CONVERSATION_MODEL`'s columns already read."""
    if row is None or not row["found"]:
        return None
    model = row["openai_model"] or (settings or get_settings()).openai_model
    return llm_config_of(row, model=model, temperature=row["temperature"], settings=settings)
