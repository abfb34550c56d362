"""The configuration tables as resources: natural keys, compared fields and their types, one TableSpec per table.

Everything the reconciler knows about the schema lives here, so state reading, diffing, rendering and
applying stay generic. Runtime columns (number status, target progress, contact lid, ...) are simply not
listed: they are never compared, hashed or written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

# Field types: how a value is normalised so YAML values and Postgres values compare (and hash) equal.
TEXT, INT, BOOL, NUM2, DATE, JSON, TEXTS, ENUM, ENUMS, REF = (
    "text",
    "int",
    "bool",
    "num2",
    "date",
    "json",
    "text[]",
    "enum",
    "enum[]",
    "ref",
)
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Field:
    """One compared column. `ref` names the kind a uuid column points at (resolved by natural key)."""

    name: str
    type: str = TEXT
    pg: str = "text"  # the cast used when writing (`%s::<pg>`)
    ref: str | None = None
    sensitive: bool = False
    select: str | None = None  # SQL expression read instead of the column
    assign: str | None = None  # SQL `set` fragment instead of `<name> = %s::<pg>`
    insert: bool = True  # written by inserts (False for virtual fields)
    hashed: bool = True  # part of applied_hash
    display: str | None = None  # the name shown in plans, when not derived from the column

    @property
    def label(self) -> str:
        """The name shown in plans: `persona_id` reads as `persona`, a secret's fingerprint as `value`."""
        if self.display:
            return self.display
        return self.name[:-3] if self.ref and self.name.endswith("_id") else self.name


@dataclass(frozen=True)
class TableSpec:
    """A configuration table: where its rows hang (parent), how they are named (key) and what is compared.

    `key` lists the natural-key parts within the parent; each part is a tuple of alternative columns, the
    first non-null one wins (a participant is a number *or* a contact). A ref column in the key contributes
    the key of the row it points at. An empty key makes a singleton (one row per parent).
    """

    name: str
    table: str
    label: str  # address segment: numbers, settings, schedule, ...
    fields: tuple[Field, ...]
    key: tuple[tuple[str, ...], ...] = ()
    parent: str | None = None  # spec name of the parent; None: the tenant
    parent_column: str | None = None
    runtime: tuple[str, ...] = ()  # runtime columns read for effects, never compared
    by_name: Mapping[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    @property
    def hashed(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.hashed)

    def address(self, parent: str | None, parts: Sequence[str]) -> str:
        """`conversations.bom-dia.schedule.mon`: the parent's address, the label, the key parts joined by `~`."""
        head = f"{parent}.{self.label}" if parent else self.label
        return f"{head}.{'~'.join(parts)}" if parts else head


def _f(name: str, type_: str = TEXT, pg: str | None = None, **kw: Any) -> Field:
    default_pg = {
        TEXT: "text",
        INT: "integer",
        BOOL: "boolean",
        NUM2: "numeric",
        DATE: "date",
        JSON: "jsonb",
        TEXTS: "text[]",
        REF: "uuid",
    }
    return Field(name, type_, pg or default_pg.get(type_, "text"), **kw)


def _window(part: str) -> tuple[Field, Field]:
    return _f(f"{part}_enabled", BOOL), _f(f"{part}_window", JSON)


TENANT = TableSpec(
    "tenant",
    "t_tenants",
    "tenant",
    (
        _f("name"),
        _f("plan"),
        _f("timezone"),
        _f("locale"),
        _f("prune", BOOL),
        # Virtual: a tenant that comes back after being archived is un-archived (never a second row).
        _f(
            "archived",
            BOOL,
            select="(archived_at is not null)",
            assign="archived_at = case when %s::boolean then now() end",
            insert=False,
            hashed=False,
        ),
    ),
)
SPECS: tuple[TableSpec, ...] = (
    TENANT,
    TableSpec("members", "t_users", "members", (_f("email"), _f("role")), key=(("email",),)),
    TableSpec(
        "settings",
        "t_settings_tenant",
        "settings",
        (
            _f("min_delay_ms", INT),
            _f("max_delay_ms", INT),
            _f("hourly_burst_limit", INT),
            _f("daily_limit", INT),
            _f("quiet_hours", JSON),
            _f("humanize", BOOL),
            _f("allow_bot_to_bot", BOOL),
            _f("evolution_base_url"),
            _f("openai_base_url"),
            # `extra` is not managed from YAML yet: never compared, never overwritten.
        ),
    ),
    TableSpec(
        "secrets",
        "t_tenant_secrets",
        "secrets",
        (_f("name"), _f("fingerprint", sensitive=True, display="value")),
        key=(("name",),),
    ),
    TableSpec(
        "personas",
        "t_personas",
        "personas",
        (
            _f("key"),
            _f("name"),
            _f("style"),
            _f("greeting_morning", TEXTS),
            _f("greeting_afternoon", TEXTS),
            _f("greeting_evening", TEXTS),
            _f("phrases", JSON),
            _f("emoji_rate", NUM2),
        ),
        key=(("key",),),
    ),
    TableSpec(
        "numbers",
        "t_numbers",
        "numbers",
        (
            _f("key"),
            _f("label"),
            _f("wa_number"),
            _f("persona_id", REF, ref="personas"),
            _f("warmup_started_on", DATE),
            _f("active", BOOL),
        ),
        key=(("key",),),
        runtime=("session_id",),
    ),
    TableSpec(
        "contacts",
        "t_contacts",
        "contacts",
        (_f("wa_number"), _f("display_name"), _f("tags", TEXTS), _f("notes")),
        key=(("wa_number",),),
    ),
    TableSpec(
        "conversations",
        "t_conversations",
        "conversations",
        (
            _f("key"),
            _f("name"),
            _f("mode", ENUM, "convo_mode"),
            _f("active", BOOL),
            _f("openai_model"),
            _f("temperature", NUM2),
            _f("topic_strategy"),
            _f("topic_refresh_minutes", INT),
            _f("exchanges_min", INT),
            _f("exchanges_max", INT),
        ),
        key=(("key",),),
    ),
    TableSpec(
        "conversation_settings",
        "t_settings_conversation",
        "settings",
        (
            _f("min_delay_ms", INT),
            _f("max_delay_ms", INT),
            _f("hourly_burst_limit", INT),
            _f("humanize", BOOL),
            _f("allow_bot_to_bot", BOOL),
            _f("guard_no_echo", BOOL),
        ),
        parent="conversations",
        parent_column="conversation_id",
    ),
    TableSpec(
        "participants",
        "t_conversation_participants",
        "participants",
        (
            _f("participant_kind", ENUM, "participant_kind"),
            _f("number_id", REF, ref="numbers"),
            _f("contact_id", REF, ref="contacts"),
            _f("role"),
            _f("start_order", INT),
        ),
        key=(("number_id", "contact_id"),),
        parent="conversations",
        parent_column="conversation_id",
    ),
    TableSpec(
        "pairings",
        "t_pairings",
        "pairings",
        (
            _f("number_a_id", REF, ref="numbers"),
            _f("number_b_id", REF, ref="numbers"),
            _f("contact_b_id", REF, ref="contacts"),
            _f("starts"),
            # The index in the YAML `pairings:` list: round_robin's order (ADR 0060). Not hashed, so the rows of
            # an upgraded database (hashed before the column existed) show a place change, never drift.
            _f("position", INT, hashed=False),
        ),
        key=(("number_a_id",), ("number_b_id", "contact_b_id")),
        parent="conversations",
        parent_column="conversation_id",
    ),
    TableSpec(
        "schedule",
        "t_conversation_schedule",
        "schedule",
        (
            _f("day", ENUM, "dow"),
            *_window("morning"),
            *_window("afternoon"),
            *_window("evening"),
            _f("max_rounds_per_window", INT),
            _f("pause_between_rounds_min", INT),
            _f("pause_between_rounds_max", INT),
        ),
        key=(("day",),),
        parent="conversations",
        parent_column="conversation_id",
    ),
    TableSpec(
        "topics",
        "t_topics",
        "topics",
        (
            _f("key"),
            _f("seed"),
            _f("system_prompt"),
            _f("active_from", DATE),
            _f("active_to", DATE),
            _f("weight", INT),
        ),
        key=(("key",),),
        parent="conversations",
        parent_column="conversation_id",
    ),
    TableSpec(
        "policies",
        "t_outreach_policies",
        "outreach",
        (
            _f("key"),
            _f("number_id", REF, ref="numbers"),
            _f("persona_id", REF, ref="personas"),
            _f("daily_limit", INT),
            _f("hourly_limit", INT),
            _f("max_rounds_per_contact", INT),
            _f("min_gap_minutes", INT),
            _f("reply_wait_hours", INT),
            _f("dayparts", TEXTS),
            _f("allow_days", ENUMS, "dow[]", select="allow_days::text[]"),
            _f("optout_keywords", TEXTS),
            _f("active", BOOL),
        ),
        key=(("key",),),
    ),
    TableSpec(
        "targets",
        "t_outreach_targets",
        "targets",
        (_f("contact_id", REF, ref="contacts"), _f("priority", INT)),
        key=(("contact_id",),),
        parent="policies",
        parent_column="policy_id",
    ),
)
"""Every configuration table, parents before children: the insert order (deletes run in reverse)."""

SPEC_BY_NAME: Mapping[str, TableSpec] = {s.name: s for s in SPECS}
SPEC_BY_TABLE: Mapping[str, TableSpec] = {s.table: s for s in SPECS}


# Values ----------------------------------------------------------------------------------------------


def normalise(type_: str, value: Any) -> Any:
    """The canonical form of a value of `type_`, identical whether it came from YAML or from Postgres."""
    if value is None:
        return None
    if type_ in (TEXT, ENUM, REF):
        return str(value)
    if type_ == INT:
        return int(value)
    if type_ == BOOL:
        return bool(value)
    if type_ == NUM2:
        return str(Decimal(str(value)).quantize(_CENT))
    if type_ == DATE:
        return value.isoformat() if isinstance(value, date) else str(value)
    if type_ in (TEXTS, ENUMS):
        return [str(v) for v in value]
    if type_ == JSON:
        return value if isinstance(value, dict | list) else json.loads(json.dumps(value))
    raise ValueError(f"unknown field type {type_!r}")


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces): what hashes and fingerprints are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:32]


def values_hash(spec: TableSpec, values: Mapping[str, Any]) -> str:
    """applied_hash: the digest of a row's normalised desired-field values (refs as ids)."""
    return digest([values.get(f.name) for f in spec.hashed])


# Desired state ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A reference to another resource of the same tenant by address (`personas.tiozao`), resolved to its id."""

    address: str


@dataclass(frozen=True)
class SecretValue:
    """A secret from the environment: the variable's name and its value (None: unset, known after apply)."""

    env: str
    value: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Resource:
    """One desired row: its spec, natural key parts, parent address, values by column and previous keys."""

    spec: str
    parts: tuple[str, ...]
    values: Mapping[str, Any]
    parent: str | None = None
    previous: tuple[tuple[str, ...], ...] = ()  # earlier key parts (renames)
    secret: SecretValue | None = None

    @property
    def address(self) -> str:
        return SPEC_BY_NAME[self.spec].address(self.parent, self.parts)

    def previous_addresses(self) -> tuple[str, ...]:
        s = SPEC_BY_NAME[self.spec]
        return tuple(s.address(self.parent, p) for p in self.previous)


@dataclass(frozen=True)
class DesiredTenant:
    slug: str
    resources: tuple[Resource, ...]  # includes the `tenant` resource itself
    prune: bool = False


@dataclass(frozen=True)
class DesiredState:
    """What the YAML asks for. `scope` None: every tenant (a tenant only in the database is a deletion)."""

    tenants: Mapping[str, DesiredTenant]
    scope: tuple[str, ...] | None = None
    skipped: tuple[str, ...] = ()  # empty tenant folders: never planned, never deleted
    warnings: tuple[str, ...] = ()
