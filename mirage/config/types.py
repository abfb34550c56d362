"""Building blocks shared by every tenant model: the strict base model, keys, E.164, times, days and secrets."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import time
from typing import Annotated, Any, Literal, cast, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
E164_PATTERN = r"^\+[1-9][0-9]{7,14}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"

EXCERPT_WHOLE = 24  # characters of a value an error message may quote whole
EXCERPT_HEAD = 4  # characters shown of a longer value; the rest is masked


def excerpt(value: object) -> str:
    """A value as an error message may quote it: whole when short, else its first characters and its length.

    A value in the wrong place may be a secret (a key pasted into `number:`, a file that is not YAML), so
    messages never echo more than a short excerpt of it.
    """
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    text = str(value)
    if len(text) <= EXCERPT_WHOLE:
        return repr(text)
    return f"{text[:EXCERPT_HEAD] + '…'!r} ({len(text)} characters)"


# Friendly messages for pattern mismatches (the loader maps pydantic's pattern errors through this, `value`
# already an excerpt).
PATTERN_MESSAGES: dict[str, str] = {
    KEY_PATTERN: "{value} is not a valid key: use 1-63 lower-case letters, digits, '-' or '_'",
    SLUG_PATTERN: "{value} is not a valid tenant slug: use 1-63 lower-case letters, digits or '-'",
    E164_PATTERN: "{value} is not an E.164 number like +5511987654321",
    EMAIL_PATTERN: "{value} is not an e-mail address",
    ENV_NAME_PATTERN: "{value} is not an environment variable name",
}

# Postgres `integer` (int4) holds -2147483648..2147483647; text and jsonb cannot hold the NUL character.
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
NUL = "\x00"
NUL_MESSAGE = "text contains a NUL character (\\u0000), which the database cannot store"


class _Int32Bounds:
    """Keeps an int inside int4 on top of the field's own bounds (which it never replaces, unlike Field(le=...))."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = dict(handler(source))  # {"type": "int", ...} with the field's own ge/gt/le/lt
        if schema.get("lt", math.inf) > INT32_MAX + 1:  # unless its own `lt` already keeps it inside
            schema["le"] = min(schema.get("le", INT32_MAX), INT32_MAX)
        if schema.get("gt", -math.inf) < INT32_MIN - 1:
            schema["ge"] = max(schema.get("ge", INT32_MIN), INT32_MIN)
        return cast(CoreSchema, schema)


Int32 = Annotated[int, _Int32Bounds()]
"""A whole number stored in a Postgres `integer` column: the field's bounds, and never outside int4."""


def int32_message(kind: str, bound: object) -> str | None:
    """The message for an int4 bound error (pydantic `less_than_equal` / `greater_than_equal`), else None."""
    if kind == "less_than_equal" and bound == INT32_MAX:
        return f"is above {INT32_MAX}, the largest whole number the database stores"
    if kind == "greater_than_equal" and bound == INT32_MIN:
        return f"is below {INT32_MIN}, the smallest whole number the database stores"
    return None


Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
"""A configuration key (numbers, personas, conversations, topics, policies): the row's natural key."""
Tag = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
E164 = Annotated[str, StringConstraints(pattern=E164_PATTERN)]
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, to_lower=True, strip_whitespace=True)]


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M")


HHMM = Annotated[
    time,
    PlainSerializer(_hhmm, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": TIME_PATTERN, "examples": ["08:00", "22:30"]}),
]
"""A wall-clock time "HH:MM" in the tenant's time zone (quote it or not: the loader keeps 22:00 a time)."""

Dow = Literal["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
DOWS: tuple[Dow, ...] = get_args(Dow)
Daypart = Literal["morning", "afternoon", "evening"]
DAYPARTS: tuple[Daypart, ...] = get_args(Daypart)
DayGroup = Literal["every_day", "weekdays", "weekend"]
DAY_GROUPS: dict[str, tuple[Dow, ...]] = {
    "every_day": DOWS,
    "weekdays": ("mon", "tue", "wed", "thu", "fri"),
    "weekend": ("sat", "sun"),
}


class Model(BaseModel):
    """Base of every tenant model: immutable, unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


def previous_keys() -> Any:
    """The `previous_keys` field every renameable model has."""
    return Field(
        default_factory=list,
        description="Keys this item had before a rename; plan/apply turn the rename into an update. Default [].",
    )


class SecretRef(BaseModel):
    """A secret written as an `${ENV_VAR}` reference; only the variable name is kept, the value is read on demand.

    The models never read the process environment: the shell passes the mapping to resolve against
    (reconcile/service.py) and registers the values it reads for log redaction.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    env: str = Field(pattern=ENV_NAME_PATTERN, description="Name of the environment variable holding the secret.")

    @model_validator(mode="before")
    @classmethod
    def _from_reference(cls, value: Any) -> Any:
        if isinstance(value, SecretRef | dict):
            return value
        if isinstance(value, str) and (m := ENV_REF.match(value.strip())):
            return {"env": m[1]}
        # Never echo the value: it may be the secret itself.
        raise ValueError("must be an ${ENV_VAR} reference, not a literal (secrets in YAML end up in git)")

    def resolve(self, environ: Mapping[str, str]) -> str | None:
        """The secret's value from `environ`, or None when unset or empty (the caller registers it for redaction)."""
        return environ.get(self.env) or None

    def __str__(self) -> str:
        return "${" + self.env + "}"

    def __repr__(self) -> str:
        return f"SecretRef(env={self.env!r})"

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$",
            "description": "An ${ENV_VAR} reference; secrets are never written in YAML.",
            "examples": ["${EVOLUTION_API_KEY}"],
        }


def resolve_env_reference(value: str, environ: Mapping[str, str] | None) -> str | None:
    """A literal stays as is; `${VAR}` becomes the variable's value from `environ` (None when unset or empty).

    `environ` is what the loader's shell passes (load_fleet: os.environ by default); validated without one,
    a reference resolves as unset.
    """
    m = ENV_REF.match(value.strip())
    if not m:
        return value
    return (environ or {}).get(m[1]) or None
