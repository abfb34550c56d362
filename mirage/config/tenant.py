"""`tenant.yaml` (t_tenants, t_settings_tenant, t_tenant_secrets, t_users) and the assembled TenantConfig."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo, WithJsonSchema

from mirage.config.contacts import Contact
from mirage.config.conversations import Conversation, ConversationDefaults
from mirage.config.numbers import Number
from mirage.config.outreach import OutreachPolicy
from mirage.config.personas import Persona
from mirage.config.types import (
    HHMM,
    SLUG_PATTERN,
    Email,
    Int32,
    Key,
    Model,
    SecretRef,
    excerpt,
    resolve_env_reference,
)
from mirage.engine.calendar import is_valid_timezone

_URL_OR_REF = r"^(https?://\S+|\$\{[A-Za-z_][A-Za-z0-9_]*\})$"


def _check_timezone(name: str) -> str:
    if not is_valid_timezone(name):
        raise ValueError(f"unknown time zone {excerpt(name)} (use an IANA name such as America/Sao_Paulo)")
    return name


def _url_or_reference(value: str | None, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    environ = (info.context or {}).get("environ")
    resolved = resolve_env_reference(value, environ)
    if resolved is None:
        return None
    if not resolved.startswith(("http://", "https://")) or any(c.isspace() for c in resolved):
        raise ValueError("must be an http(s):// URL or an ${ENV_VAR} reference to one")
    return resolved.rstrip("/")


TimeZone = Annotated[str, AfterValidator(_check_timezone)]
UrlOrRef = Annotated[
    str | None,
    AfterValidator(_url_or_reference),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": _URL_OR_REF}, {"type": "null"}]}),
]


class QuietHours(Model):
    """Tenant-wide hours in which nothing is sent; may cross midnight (22:00 -> 07:00)."""

    start: HHMM = Field(
        time(22, 0),
        description='When quiet hours begin, "HH:MM". Default "22:00".',
        json_schema_extra={"default": "22:00"},
    )
    end: HHMM = Field(
        time(7, 0),
        description='When quiet hours end, "HH:MM" (may be before start). Default "07:00".',
        json_schema_extra={"default": "07:00"},
    )


class TenantSettings(Model):
    """Cadence and limits for the whole tenant (t_settings_tenant); conversations may override some."""

    min_delay_ms: Int32 = Field(4000, ge=0, description="Shortest delay before a message, ms. Default 4000.")
    max_delay_ms: Int32 = Field(25000, ge=0, description="Longest delay before a message, ms (>= min). Default 25000.")
    hourly_burst_limit: Int32 = Field(30, gt=0, description="Most messages per number per hour. Default 30.")
    daily_limit: Int32 = Field(200, gt=0, description="Most messages per number per day. Default 200.")
    quiet_hours: QuietHours = Field(
        default_factory=QuietHours, description='Nothing is sent inside. Default {start: "22:00", end: "07:00"}.'
    )
    humanize: bool = Field(True, description="Typing presence for a time that grows with the text. Default true.")
    allow_bot_to_bot: bool = Field(True, description="Allow bot numbers to talk to each other. Default true.")


class EvolutionConfig(Model):
    """Where the tenant's Evolution API server is and the key to use it."""

    base_url: UrlOrRef = Field(
        None,
        description="Evolution API URL, literal or ${ENV_VAR} (resolved when loading; unset variable -> none). "
        "Default: none (the EVOLUTION_BASE_URL setting).",
    )
    api_key: SecretRef | None = Field(
        None,
        description="Global API key as an ${ENV_VAR} reference, never a literal. Default: none "
        "(the EVOLUTION_API_KEY setting).",
    )


class OpenAIConfig(Model):
    """The tenant's own OpenAI-compatible endpoint and key (optional; without a key the offline generator speaks)."""

    api_key: SecretRef | None = Field(None, description="API key as an ${ENV_VAR} reference. Default: none.")
    base_url: UrlOrRef = Field(None, description="Any OpenAI-compatible URL, literal or ${ENV_VAR}. Default: none.")


class Member(Model):
    """A person who may sign in to the tenant's pages."""

    email: Email = Field(description="Sign-in e-mail (stored lower-case).")
    role: Literal["admin", "member"] = Field("member", description="admin | member. Default member.")


class _TenantBase(Model):
    name: str = Field(min_length=1, description="The tenant's display name.")
    plan: str = Field("free", min_length=1, description="Commercial plan label. Default free.")
    timezone: TimeZone = Field("America/Sao_Paulo", description="IANA time zone of schedules and quiet hours.")
    locale: Literal["pt-BR", "en"] = Field("pt-BR", description="Language of pages and messages. Default pt-BR.")
    prune: bool = Field(
        False,
        description="Let apply delete this tenant's rows missing from YAML without --allow-delete. Default false.",
    )
    settings: TenantSettings = Field(default_factory=TenantSettings, description="Cadence and limits.")
    evolution: EvolutionConfig = Field(default_factory=EvolutionConfig, description="Evolution API server and key.")
    openai: OpenAIConfig | None = Field(None, description="OpenAI endpoint and key. Default: none (offline).")
    members: list[Member] = Field(default_factory=list, description="People who sign in. Default [].")
    viewers: list[Email] = Field(default_factory=list, description="E-mails with read-only access. Default [].")


class TenantFile(_TenantBase):
    """`tenant.yaml`."""

    defaults: ConversationDefaults = Field(
        default_factory=ConversationDefaults,
        description="Values merged into every conversation (the conversation's own value wins). Default: none.",
    )


Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]


class TenantConfig(_TenantBase):
    """One tenant, fully resolved: every file of its folder loaded, defaults merged, tags expanded."""

    slug: Slug = Field(description="The tenant folder's name (t_tenants.slug).")
    numbers: dict[Key, Number] = Field(default_factory=dict, description="Bot numbers by key.")
    personas: dict[Key, Persona] = Field(default_factory=dict, description="Personas by key.")
    conversations: dict[Key, Conversation] = Field(default_factory=dict, description="Conversations by file key.")
    contacts: dict[str, Contact] = Field(default_factory=dict, description="Contacts by E.164 number.")
    outreach: dict[Key, OutreachPolicy] = Field(default_factory=dict, description="Outreach policies by key.")
