"""Desired state: tenant YAML -> validated pydantic models (pure, no I/O beyond reading files).

from mirage.config import load_fleet
fleet = load_fleet(Path("tenants.d"))            # ConfigError lists every problem as path:line:col
fleet.tenants["acme"].numbers["tio-joao"].persona
fleet.locate("acme", "numbers", "tio-joao", "persona")  # -> ("tenants.d/acme/numbers.yaml", 7, 14)

Layer: the pure core, with mirage.engine (docs/architecture.md#layers). May import: mirage.engine,
mirage.errors, pydantic and PyYAML; never a database, Redis, queue or HTTP client, the settings or a shell layer
(contracts `pure-core` and `layers`).
"""

from mirage.config.contacts import Contact
from mirage.config.conversations import (
    Conversation,
    ConversationDefaults,
    ConversationSettings,
    Exchanges,
    Pairing,
    Participant,
    Topic,
)
from mirage.config.fleet import Fleet
from mirage.config.loader import load_fleet
from mirage.config.numbers import Number
from mirage.config.outreach import OutreachPolicy, OutreachTarget
from mirage.config.personas import Greetings, Persona, Phrases
from mirage.config.schedule import DaypartWindow, DaySchedule, WeekSchedule
from mirage.config.tenant import EvolutionConfig, Member, OpenAIConfig, QuietHours, TenantConfig, TenantSettings
from mirage.config.tenant_loader import load_tenant
from mirage.config.types import DAYPARTS, DOWS, SecretRef
from mirage.errors import ConfigError, Problem

__all__ = [
    "DAYPARTS",
    "DOWS",
    "ConfigError",
    "Contact",
    "Conversation",
    "ConversationDefaults",
    "ConversationSettings",
    "DaySchedule",
    "DaypartWindow",
    "EvolutionConfig",
    "Exchanges",
    "Fleet",
    "Greetings",
    "Member",
    "Number",
    "OpenAIConfig",
    "OutreachPolicy",
    "OutreachTarget",
    "Pairing",
    "Participant",
    "Persona",
    "Phrases",
    "Problem",
    "QuietHours",
    "SecretRef",
    "TenantConfig",
    "TenantSettings",
    "Topic",
    "WeekSchedule",
    "load_fleet",
    "load_tenant",
]
