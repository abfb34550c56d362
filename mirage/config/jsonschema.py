"""JSON Schemas of the tenant files, generated from the models (schemas/*.schema.json, for editors and CI)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from mirage.config.contacts import ContactsFile
from mirage.config.conversations import ConversationSpec
from mirage.config.numbers import NumbersFile
from mirage.config.outreach import OutreachFile
from mirage.config.personas import PersonasFile
from mirage.config.tenant import TenantFile

DRAFT = "https://json-schema.org/draft/2020-12/schema"

KINDS: dict[str, tuple[type[BaseModel], str]] = {
    "tenant": (TenantFile, "tenants.d/<slug>/tenant.yaml"),
    "numbers": (NumbersFile, "tenants.d/<slug>/numbers.yaml"),
    "personas": (PersonasFile, "tenants.d/<slug>/personas.yaml"),
    "conversation": (ConversationSpec, "tenants.d/<slug>/conversations/<key>.yaml"),
    "contacts": (ContactsFile, "tenants.d/<slug>/contacts.yaml"),
    "outreach": (OutreachFile, "tenants.d/<slug>/outreach.yaml"),
}


def file_name(kind: str) -> str:
    return f"{kind}.schema.json"


def _close_keyed_maps(node: Any) -> Any:
    """Mappings keyed by a pattern (numbers.<key>, …) reject other keys, as validation does."""
    if isinstance(node, dict):
        out = {k: _close_keyed_maps(v) for k, v in node.items()}
        if "patternProperties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_close_keyed_maps(v) for v in node]
    return node


def schema_for(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one file kind, as the YAML is written (input mode)."""
    model, where = KINDS[kind]
    body = _close_keyed_maps(model.model_json_schema(mode="validation"))
    return {
        "$schema": DRAFT,
        "$id": file_name(kind),
        "title": f"Mirage {where}",
        **{k: v for k, v in body.items() if k != "title"},
    }


def render(kind: str) -> str:
    """The schema file's exact text (stable key order, UTF-8, trailing newline)."""
    return json.dumps(schema_for(kind), indent=2, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """file name -> text for every kind."""
    return {file_name(k): render(k) for k in KINDS}
