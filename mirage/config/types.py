"""Building blocks shared by every tenant model: the strict base model, keys, E.164, times, days and secrets."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import time
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from mirage.logs import register_secret

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
E164_PATTERN = r"^\+[1-9][0-9]{7,14}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"

# Friendly messages for pattern mismatches (the loader maps pydantic's pattern errors through this).
PATTERN_MESSAGES: dict[str, str] = {
    KEY_PATTERN: "{value!r} is not a valid key: use 1-63 lower-case letters, digits, '-' or '_'",
    SLUG_PATTERN: "{value!r} is not a valid tenant slug: use 1-63 lower-case letters, digits or '-'",
    E164_PATTERN: "{value!r} is not an E.164 number like +5511987654321",
    EMAIL_PATTERN: "{value!r} is not an e-mail address",
    ENV_NAME_PATTERN: "{value!r} is not an environment variable name",
}

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
    """A secret written as an `${ENV_VAR}` reference; only the variable name is kept, the value is read on demand."""

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

    def resolve(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The secret's value from `environ` (default os.environ), or None when unset; registered for log redaction."""
        value = (os.environ if environ is None else environ).get(self.env) or None
        register_secret(value)
        return value

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
    """A literal stays as is; `${VAR}` becomes the variable's value from `environ` (None when unset or empty)."""
    m = ENV_REF.match(value.strip())
    if not m:
        return value
    return (os.environ if environ is None else environ).get(m[1]) or None
