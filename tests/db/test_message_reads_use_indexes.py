"""Reads of a conversation's messages name its tenant, so Postgres seeks in t_messages' (tenant_id,
conversation_id, created_at) index instead of scanning all of it: a scan's cost grows with every message ever
stored (a simulated week of 100 tenants got slower day by day). Checked on the plan Postgres makes, with
sequential scans off so an empty table still shows which index conditions the statement can use."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from mirage.db import message_text

CONVERSATION_INDEX = "t_messages_conversation_time_idx"


def _index_conditions(plan: Any) -> list[str]:
    """The index conditions of every node of a JSON plan that reads the conversation index."""
    found = []
    if isinstance(plan, dict):
        if plan.get("Index Name") == CONVERSATION_INDEX:
            found.append(str(plan.get("Index Cond", "")))
        for value in plan.values():
            found += _index_conditions(value)
    elif isinstance(plan, list):
        for value in plan:
            found += _index_conditions(value)
    return found


@pytest.mark.parametrize("statement", ["_TEXT_INPUTS", "_HISTORY"])
def test_a_steps_text_reads_the_conversations_messages_by_tenant_and_conversation(
    db: psycopg.Connection[Any], statement: str
) -> None:
    sql = getattr(message_text, statement)
    params = {
        "tenant": uuid.uuid4(),
        "conversation": uuid.uuid4(),
        "round": uuid.uuid4(),
        "step": 1,
        "since": datetime(2026, 12, 1, tzinfo=UTC),
        "limit": 20,
    }
    if "%s" in sql:
        params = (params["tenant"], params["conversation"], params["limit"])  # type: ignore[assignment]
    db.execute("set enable_seqscan = off")
    try:
        plan = db.execute(f"explain (format json) {sql}", params).fetchone()
    finally:
        db.execute("reset enable_seqscan")
    conditions = _index_conditions(plan)
    assert conditions, f"{statement} does not read {CONVERSATION_INDEX}"
    assert all("tenant_id" in c and "conversation_id" in c for c in conditions), conditions
