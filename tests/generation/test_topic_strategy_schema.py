"""`weighted` is a topic strategy everywhere: the YAML model, the JSON Schema and the database's check constraint."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from mirage.config.conversations import ConversationSpec
from tests.generation.helpers import ROOT

STRATEGIES = ["rotate", "random", "weighted", "sticky"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_validates_in_yaml_and_is_in_the_json_schema(strategy: str) -> None:
    assert ConversationSpec.model_validate({"name": "x", "topic_strategy": strategy}).topic_strategy == strategy
    schema = json.loads((ROOT / "schemas" / "conversation.schema.json").read_text(encoding="utf-8"))
    assert strategy in json.dumps(schema["properties"]["topic_strategy"])


def test_an_unknown_strategy_is_refused_by_the_model() -> None:
    with pytest.raises(ValidationError):
        ConversationSpec.model_validate({"name": "x", "topic_strategy": "by_weight"})


@pytest.mark.parametrize(("strategy", "accepted"), [*((s, True) for s in STRATEGIES), ("by_weight", False)])
def test_the_database_accepts_exactly_the_models_strategies(
    db: psycopg.Connection[Any], strategy: str, accepted: bool
) -> None:
    tid = db.execute("insert into t_tenants (slug, name) values ('t', 'T') returning id").fetchone()["id"]  # type: ignore[index]
    insert = "insert into t_conversations (tenant_id, key, name, topic_strategy) values (%s, 'c', 'C', %s)"
    if accepted:
        db.execute(insert, (tid, strategy))
        db.commit()
    else:
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute(insert, (tid, strategy))
        db.rollback()
