"""Hostile names and bodies render as inert text: an Evolution webhook fixture carrying markup goes through the real
ingest into t_messages, hostile labels, names, topics and reasons are seeded, and every page escapes them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from tests.conftest import SHARED_FIXTURES
from tests.pages.conftest import access_token, bearer
from tests.pages.helpers import Fleet, refresh, seed_fleet
from tests.webhooks.helpers import WEBHOOK, seed_instance

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</textarea><svg onload=alert(1)>",
    "{{ 7*7 }}{% raw %}",
    "<a href='javascript:alert(1)'>x</a>",
]


def _inert(html: str, hostile: str) -> None:
    """Markup arrives escaped; template syntax arrives as the same text (never evaluated)."""
    if any(ch in hostile for ch in "<>\"'&"):
        assert hostile not in html
        assert str(escape(hostile)) in html
    else:
        assert hostile in html


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_names_topics_and_reasons_render_as_text(db: Any, client: TestClient, hostile: str) -> None:
    fleet = seed_fleet(
        db,
        "hostil",
        days=2,
        hostile={"label": hostile, "conversation": hostile, "topic": hostile, "body": hostile, "tenant": hostile},
    )
    db.execute("update t_numbers set status_reason = %s where id = %s", (hostile, fleet.numbers["d"]))
    db.commit()
    refresh(db)
    token = access_token(fleet, "admin", "aal2")
    pages = [
        "/",
        f"/numbers/{fleet.numbers['a']}",
        f"/conversations/{fleet.conversations['main']}",
        "/messages",
        "/operators/qr",
    ]
    for path in pages:
        response = client.get(path, headers=bearer(token), params={"period": "30d"})
        assert response.status_code == 200, path
        _inert(response.text, hostile)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_body_from_an_evolution_webhook_renders_inert(db: Any, client: TestClient, hostile: str) -> None:
    seeded = seed_instance(db, "webhookxss")
    envelope = json.loads((SHARED_FIXTURES / "evolution" / "messages.upsert.json").read_text())
    envelope["data"]["pushName"] = hostile
    envelope["data"]["message"]["conversation"] = hostile
    envelope["data"]["key"]["id"] = uuid.uuid4().hex.upper()
    response = client.post(WEBHOOK, content=json.dumps(envelope), headers=seeded.headers())
    assert response.status_code < 300, response.text
    stored = db.execute("select body from t_messages where tenant_id = %s", (seeded.tenant_id,)).fetchall()
    assert [r["body"] for r in stored] == [hostile]
    auth_id = uuid.uuid4()
    db.execute(
        "insert into t_users (tenant_id, email, role, auth_user_id) values (%s, 'ops@x.example', 'admin', %s)",
        (seeded.tenant_id, auth_id),
    )
    db.commit()
    fleet = Fleet(
        seeded.tenant_id, "webhookxss", "UTC", None, auth_ids={"admin": auth_id}, emails={"admin": "ops@x.example"}
    )  # type: ignore[arg-type]
    text = client.get("/messages", headers=bearer(access_token(fleet, "admin", "aal2"))).text
    assert "<tr data-id=" in text
    _inert(text, hostile)
