"""Every model field is described and documented; the JSON Schemas are current; examples point at them."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import mirage.config.contacts
import mirage.config.conversations
import mirage.config.numbers
import mirage.config.outreach
import mirage.config.personas
import mirage.config.schedule
import mirage.config.tenant
import mirage.config.types
from mirage.config.conversations import ConversationSettings, Exchanges
from mirage.config.jsonschema import KINDS, render_all, schema_for
from mirage.config.lint import RULES
from mirage.config.outreach import TargetSpec
from mirage.config.schedule import PauseRange
from mirage.config.tenant import TenantSettings
from mirage.config.types import INT32_MAX, INT32_MIN
from mirage.config.yamlsource import build, compose
from mirage.settings import Settings
from tests.config.helpers import run, schema_errors

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
MODULES = [
    mirage.config.types,
    mirage.config.tenant,
    mirage.config.numbers,
    mirage.config.personas,
    mirage.config.schedule,
    mirage.config.conversations,
    mirage.config.contacts,
    mirage.config.outreach,
]
MODELS = sorted(
    {
        obj
        for mod in MODULES
        for _, obj in inspect.getmembers(mod, inspect.isclass)
        if issubclass(obj, BaseModel) and obj.__module__ == mod.__name__
    },
    key=lambda m: m.__qualname__,
)
FIELDS = [(m, name) for m in MODELS for name in m.model_fields]


def _doc_identifiers() -> set[str]:
    spans = re.findall(r"`([^`\n]+)`", DOC) + re.findall(r"^\| ([^|]+) \|", DOC, flags=re.M)
    return {word for span in spans for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span)}


DOCUMENTED = _doc_identifiers()


@pytest.mark.parametrize(("model", "name"), FIELDS, ids=[f"{m.__name__}.{n}" for m, n in FIELDS])
def test_every_model_field_has_a_description(model: type[BaseModel], name: str) -> None:
    assert (model.model_fields[name].description or "").strip()


@pytest.mark.parametrize(("model", "name"), FIELDS, ids=[f"{m.__name__}.{n}" for m, n in FIELDS])
def test_configuration_doc_mentions_every_model_field(model: type[BaseModel], name: str) -> None:
    assert name in DOCUMENTED, f"{model.__name__}.{name} is not in docs/configuration.md"


def test_every_model_forbids_unknown_keys_and_is_frozen() -> None:
    for m in MODELS:
        assert m.model_config.get("extra") == "forbid", m
        assert m.model_config.get("frozen") is True, m


@pytest.mark.parametrize("alias", [f.alias for f in Settings.model_fields.values()])
def test_configuration_doc_lists_every_environment_variable(alias: str | None) -> None:
    section = DOC.split("## Environment variables", 1)[1]
    assert f"| `{alias}` |" in section


@pytest.mark.parametrize("rule", [r.id for r in RULES])
def test_configuration_doc_lists_every_lint_rule(rule: str) -> None:
    assert f"| `{rule}` |" in DOC


def test_schema_export_check_passes_on_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = run("schema", "export", "--check")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{len(KINDS)} schema file(s) up to date"


def test_schema_export_writes_then_check_catches_a_stale_file(tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    assert run("schema", "export", "--check", "--out", str(out)).exit_code == 1
    assert run("schema", "export", "--out", str(out)).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(render_all())
    assert run("schema", "export", "--check", "--out", str(out)).exit_code == 0
    (out / "numbers.schema.json").write_text("{}\n", encoding="utf-8")
    stale = run("schema", "export", "--check", "--out", str(out))
    assert stale.exit_code == 1
    assert "numbers.schema.json is missing or stale" in stale.output


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_schemas_describe_the_yaml_as_written(kind: str) -> None:
    schema = schema_for(kind)
    model, _ = KINDS[kind]
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["properties"]) == set(model.model_fields)
    assert schema["additionalProperties"] is False
    json.dumps(schema)  # serialisable


def test_conversation_schema_accepts_day_groups_and_off() -> None:
    text = json.dumps(schema_for("conversation"))
    for word in ('"weekdays"', '"every_day"', '"weekend"', '"off"'):
        assert word in text


EXAMPLE_FILES = sorted(p for p in (ROOT / "tenants.d").rglob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLE_FILES])
def test_example_files_carry_the_schema_comment_for_their_kind(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    m = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert m, f"{path} does not start with the yaml-language-server comment"
    target = (path.parent / m[1]).resolve()
    assert target.is_file()
    kind = "conversation" if path.parent.name == "conversations" else path.stem
    assert target.name == f"{kind}.schema.json"


@pytest.mark.parametrize(
    "args",
    [("validate", "tenants.d"), ("lint", "tenants.d", "--strict"), ("schema", "export", "--check")],
    ids=lambda a: " ".join(a),
)
def test_acceptance_commands_exit_0_on_the_examples(monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    monkeypatch.chdir(ROOT)
    result = run(*args)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLE_FILES])
def test_example_files_validate_against_their_json_schema(path: Path) -> None:
    kind = "conversation" if path.parent.name == "conversations" else path.stem
    value, problems = build(compose(path.read_text(encoding="utf-8")))
    assert problems == []
    assert schema_errors(value, schema_for(kind)) == []


@pytest.mark.parametrize(
    ("kind", "document"),
    [
        ("numbers", {"numbers": {"tio": {"label": "Tio", "number": "+55", "persona": "tio"}}}),
        ("numbers", {"numbers": {"Tio": {"label": "Tio", "number": "+5511999990001"}}}),
        ("conversation", {"name": "C", "schedule": {"days": {"weekday": "off"}}}),
        ("conversation", {"name": "C", "modo": "pair"}),
        ("tenant", {"name": "T", "evolution": {"api_key": "literal-secret"}}),
        ("tenant", {"name": "T", "settings": {"quiet_hours": {"start": "7:00"}}}),
        ("tenant", {"name": "T", "settings": {"daily_limit": 2147483648}}),
        ("outreach", {"policies": {"v": {"number": "tio", "targets": [{"tag": "vip", "priority": -2147483649}]}}}),
    ],
)
def test_json_schemas_reject_what_validation_rejects(kind: str, document: dict[str, object]) -> None:
    assert schema_errors(document, schema_for(kind)) != []


def _integers(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every `{"type": "integer"}` node of a JSON Schema, with its path."""
    if isinstance(node, list):
        return [found for i, item in enumerate(node) for found in _integers(item, f"{where}[{i}]")]
    if not isinstance(node, dict):
        return []
    here = [(where, node)] if node.get("type") == "integer" else []
    return here + [found for k, v in node.items() for found in _integers(v, f"{where}/{k}")]


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_every_integer_field_fits_a_postgres_integer_column(model: type[BaseModel]) -> None:
    """Every int is stored in an `integer` column: an Int32 field carries both int4 bounds (or tighter ones)."""
    for where, node in _integers(model.model_json_schema()):
        top = min(node.get("maximum", INT32_MAX + 1), node.get("exclusiveMaximum", INT32_MAX + 2) - 1)
        low = max(node.get("minimum", INT32_MIN - 1), node.get("exclusiveMinimum", INT32_MIN - 2) + 1)
        assert top <= INT32_MAX and low >= INT32_MIN, f"{model.__name__}{where} is not an Int32"


@pytest.mark.parametrize(
    ("model", "values", "error"),
    [
        (TenantSettings, {"min_delay_ms": -1}, "greater_than_equal"),
        (ConversationSettings, {"hourly_burst_limit": 0}, "greater_than"),
        (Exchanges, {"max": 21}, "less_than_equal"),
        (PauseRange, {"min": 2147483648}, "less_than_equal"),
        (TargetSpec, {"tag": "vip", "priority": -2147483649}, "greater_than_equal"),
    ],
)
def test_int32_fields_keep_their_own_bounds(model: type[BaseModel], values: dict[str, int], error: str) -> None:
    with pytest.raises(ValidationError) as e:
        model.model_validate(values)
    assert [x["type"] for x in e.value.errors()] == [error]


def test_int32_accepts_the_whole_int4_range() -> None:
    assert TargetSpec(tag="vip", priority=INT32_MIN).priority == INT32_MIN
    assert TenantSettings(min_delay_ms=INT32_MAX, max_delay_ms=INT32_MAX).max_delay_ms == INT32_MAX
