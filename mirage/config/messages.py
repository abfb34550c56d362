"""Pydantic validation errors rewritten as short messages about YAML keys, with the path to point at."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from mirage.config.types import PATTERN_MESSAGES, excerpt, int32_message

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Issue:
    """A problem found on models, before it has a file position: the path to the value and what is wrong."""

    path: Loc
    message: str
    key: bool = False  # point at the mapping key rather than its value
    severity: str = "error"
    rule: str | None = None


def _label(loc: Loc) -> str:
    """`numbers.tio.number` -> 'number'; `viewers.0` -> 'viewers[0]'."""
    out = ""
    for step in reversed(loc):
        if isinstance(step, int):
            out = f"[{step}]{out}"
        else:
            return f"{step}{out}"
    return out or "document"


def _short(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return excerpt(value)
    if isinstance(value, int | float) and len(str(value)) <= 60:
        return repr(value)
    return None


def _unwrap(tp: Any) -> list[Any]:
    """The model classes reachable through Optional / list / dict / Annotated layers of a type."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(tp) for m in _unwrap(a)]
    if origin in (list, dict):
        return _unwrap(typing.get_args(tp)[-1])
    return [tp] if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the model found at `loc` below `model` (for "did you mean" hints)."""
    current: list[type[BaseModel]] = [model]
    for step in loc:
        if isinstance(step, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in current:
            f = m.model_fields.get(step)
            if f is not None:
                nxt.extend(_unwrap(f.annotation))
        if nxt:
            current = nxt
    return sorted({name for m in current for name in m.model_fields})


def describe(error: ErrorDetails, model: type[BaseModel]) -> Issue:
    """One pydantic error as an Issue whose path is the YAML path of the offending value."""
    loc: Loc = tuple(error["loc"])
    typ = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        template = PATTERN_MESSAGES.get(str(ctx.get("pattern")))
        if template:
            return Issue(loc, template.format(value=excerpt(value)), key=True)
        msg = str(error["msg"]).replace("Input should be", "should be")
        return Issue(loc, f"key {excerpt(value)} {msg}", key=True)
    name = _label(loc)
    if typ == "missing":
        return Issue(loc[:-1], f"missing required key '{loc[-1]}'", key=True)
    if typ == "extra_forbidden":
        hint = difflib.get_close_matches(str(loc[-1]), known_keys(model, loc[:-1]), n=1)
        more = f" (did you mean '{hint[0]}'?)" if hint else ""
        return Issue(loc, f"unknown key {excerpt(loc[-1])}{more}", key=True)
    if typ == "string_pattern_mismatch":
        template = PATTERN_MESSAGES.get(str(ctx.get("pattern")))
        if template:
            return Issue(loc, f"{name}: {template.format(value=excerpt(value))}")
    if typ in ("value_error", "assertion_error"):
        msg = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return Issue(loc, f"{name}: {msg}")
    if typ == "literal_error":
        shown = _short(value)
        msg = str(error["msg"]).replace("Input should be", "should be")
        return Issue(loc, f"{name}: {msg}" + (f", not {shown}" if shown else ""))
    if typ in ("less_than_equal", "greater_than_equal") and (
        text := int32_message(typ, ctx.get("le" if typ == "less_than_equal" else "ge"))
    ):
        return Issue(loc, f"{name}: {_short(value) or 'the number'} {text}")
    if typ in ("string_type", "str_type") and isinstance(value, bool):
        return Issue(loc, f"{name}: expected text; quote it (YAML reads yes/no/on/off as true/false)")
    if typ in _PLAIN_MESSAGES:
        return Issue(loc, f"{name}: {_PLAIN_MESSAGES[typ]}")
    msg = str(error["msg"])
    msg = msg.replace("Input should be", "should be")
    return Issue(loc, f"{name}: {msg[:1].lower()}{msg[1:]}")


_PLAIN_MESSAGES = {
    "time_parsing": 'expected a time "HH:MM" (00:00-23:59)',
    "time_type": 'expected a time "HH:MM" (00:00-23:59)',
    "date_parsing": "expected a date YYYY-MM-DD",
    "date_type": "expected a date YYYY-MM-DD",
    "date_from_datetime_inexact": "expected a date YYYY-MM-DD, not a date and time",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "dict_type": "expected a mapping (key: value lines)",
    "model_type": "expected a mapping (key: value lines)",
    "model_attributes_type": "expected a mapping (key: value lines)",
    "list_type": "expected a list",
    "string_type": "expected text",
    "string_too_short": "must not be empty",
}


def issues_from(error: ValidationError, model: type[BaseModel]) -> list[Issue]:
    """Every error of a failed validation of `model`, as Issues."""
    return [describe(e, model) for e in error.errors(include_url=False)]
