"""A small valid tenant to break one file at a time, and a runner for the config commands."""

from __future__ import annotations

import re
import textwrap
from datetime import date
from pathlib import Path

from click.testing import CliRunner, Result

from mirage.cli import cli

BASE: dict[str, str] = {
    "tenant.yaml": """\
        name: Acme
        timezone: America/Sao_Paulo
        settings:
          min_delay_ms: 4000
          max_delay_ms: 20000
          quiet_hours: {start: "22:00", end: "07:00"}
        evolution:
          base_url: https://evo.example.com
          api_key: ${EVOLUTION_API_KEY}
        members:
          - {email: ana@acme.com, role: admin}
        viewers: [bob@acme.com]
        """,
    "numbers.yaml": """\
        numbers:
          tio:
            label: Tio
            number: "+5511999990001"
            persona: tio
            warmup_started_on: 2026-01-05
          tia:
            label: Tia
            number: "+5511999990002"
            persona: tio
            warmup_started_on: 2026-01-05
        """,
    "personas.yaml": """\
        personas:
          tio:
            name: Tio
            greetings: {morning: [Bom dia]}
        """,
    "contacts.yaml": """\
        contacts:
          - {number: "+5511888880001", name: Rosa, tags: [vip]}
          - {number: "+5511888880002", name: Antonio, tags: [vip, novo]}
        """,
    "outreach.yaml": """\
        policies:
          vip:
            number: tio
            daily_limit: 10
            hourly_limit: 3
            targets:
              - {tag: vip, priority: 5}
        """,
    "conversations/chat.yaml": """\
        name: Chat
        mode: pair
        participants:
          - {number: tio}
          - {number: tia}
        schedule:
          days:
            weekdays:
              morning: {start: "08:00", end: "11:00"}
              afternoon: {start: "14:00", end: "17:00"}
        """,
}


def write_tenant(root: Path, files: dict[str, str | bytes | None] | None = None, slug: str = "acme") -> Path:
    """tenants root with one tenant: BASE with `files` replacing (text), adding, or removing (None) files."""
    merged: dict[str, str | bytes | None] = {**BASE, **(files or {})}
    folder = root / slug
    for name, content in merged.items():
        if content is None:
            continue
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")
    return root


def run(*args: str) -> Result:
    """Run `mirage <args>` in process, English messages."""
    return CliRunner().invoke(cli, ["--lang", "en", *args], catch_exceptions=False)


def schema_errors(value: object, schema: dict[str, object], root: dict[str, object] | None = None) -> list[str]:
    """A small JSON Schema (2020-12) checker for the keywords our generated schemas use; [] when valid.

    No JSON Schema library is a dependency; this covers $ref, type, properties, patternProperties,
    additionalProperties, propertyNames, required, items, anyOf, enum, const, pattern and numeric bounds.
    """
    root = root or schema
    if "$ref" in schema:
        target: object = root
        for part in str(schema["$ref"]).removeprefix("#/").split("/"):
            target = target[part]  # type: ignore[index]
        return schema_errors(value, target, root)  # type: ignore[arg-type]
    if isinstance(value, date):
        value = value.isoformat()
    errors: list[str] = []
    if "anyOf" in schema:
        options = [schema_errors(value, s, root) for s in schema["anyOf"]]  # type: ignore[attr-defined]
        if all(options):
            errors.append(f"{value!r} matches none of anyOf: {options}")
    types = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    t = schema.get("type")
    if t is not None:
        ok = isinstance(value, types[str(t)]) and not (t in ("integer", "number") and isinstance(value, bool))  # type: ignore[arg-type]
        if not ok:
            return [*errors, f"{value!r} is not of type {t}"]
    if "enum" in schema and value not in schema["enum"]:  # type: ignore[operator]
        errors.append(f"{value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{value!r} != {schema['const']!r}")
    if isinstance(value, str) and "pattern" in schema and not re.search(str(schema["pattern"]), value):
        errors.append(f"{value!r} does not match {schema['pattern']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        for key, bad in (
            ("minimum", lambda v, b: v < b),
            ("maximum", lambda v, b: v > b),
            ("exclusiveMinimum", lambda v, b: v <= b),
            ("exclusiveMaximum", lambda v, b: v >= b),
        ):
            if key in schema and bad(value, schema[key]):
                errors.append(f"{value!r} violates {key} {schema[key]}")
    if isinstance(value, dict):
        props: dict[str, dict[str, object]] = schema.get("properties", {})  # type: ignore[assignment]
        for name in schema.get("required", []):  # type: ignore[attr-defined]
            if name not in value:
                errors.append(f"missing {name!r}")
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if "propertyNames" in schema:
                errors += [f"key {k!r}: {e}" for e in schema_errors(k, schema["propertyNames"], root)]  # type: ignore[arg-type]
            patterns: dict[str, dict[str, object]] = schema.get("patternProperties", {})  # type: ignore[assignment]
            matched = [s for p, s in patterns.items() if re.search(p, k)]
            if k in props:
                errors += [f"{k}: {e}" for e in schema_errors(v, props[k], root)]
            elif matched:
                errors += [f"{k}: {e}" for s in matched for e in schema_errors(v, s, root)]
            elif extra is False:
                errors.append(f"unknown key {k!r}")
            elif isinstance(extra, dict):
                errors += [f"{k}: {e}" for e in schema_errors(v, extra, root)]
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += [f"[{i}]: {e}" for e in schema_errors(item, schema["items"], root)]  # type: ignore[arg-type]
    return errors
