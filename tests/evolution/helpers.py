"""Helpers for the Evolution tests: tenant / number rows inserted directly, and a webhook receiver that records."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mirage.crypto import fingerprint, keyring
from tests.conftest import SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "evolution"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def make_tenant(
    db: psycopg.Connection[Any], slug: str = "acme", *, base_url: str | None, api_key: str | None
) -> uuid.UUID:
    """A tenant with its Evolution URL (t_settings_tenant) and, encrypted, its Evolution key (t_tenant_secrets)."""
    tid = db.execute(
        "insert into t_tenants (slug, name) values (%s, %s) returning id", (slug, slug.title())
    ).fetchone()["id"]
    db.execute("insert into t_settings_tenant (tenant_id, evolution_base_url) values (%s, %s)", (tid, base_url))
    if api_key is not None:
        sid = uuid.uuid4()
        enc = keyring().encrypt(api_key, table="t_tenant_secrets", row_id=sid, field="value")
        db.execute(
            "insert into t_tenant_secrets (id, tenant_id, name, value_enc, fingerprint)"
            " values (%s, %s, 'evolution_api_key', %s, %s)",
            (sid, tid, enc, fingerprint(tid, "evolution_api_key", api_key)),
        )
    db.commit()
    return tid  # type: ignore[no-any-return]


def make_number(
    db: psycopg.Connection[Any], tenant_id: uuid.UUID, key: str = "sales", wa_number: str = "+5511912345678"
) -> uuid.UUID:
    nid = db.execute(
        "insert into t_numbers (tenant_id, key, label, wa_number) values (%s, %s, %s, %s) returning id",
        (tenant_id, key, key.title(), wa_number),
    ).fetchone()["id"]
    db.commit()
    return nid  # type: ignore[no-any-return]


def row(db: psycopg.Connection[Any], sql: str, *params: Any) -> dict[str, Any]:
    db.commit()  # see other connections' commits
    found = db.execute(sql, params).fetchone()
    db.commit()
    assert found is not None, sql
    return found  # type: ignore[no-any-return]


def wait_until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll `check` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def event(self) -> str:
        return str(self.body.get("event")) if isinstance(self.body, dict) else ""


class Receiver:
    """A tiny webhook receiver: records every POST; answers the queued statuses first, then 200."""

    def __init__(self) -> None:
        self.url = ""  # set once it is served
        self.received: list[Received] = []
        self.statuses: deque[int] = deque()
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        with self._lock:
            self.received.append(
                Received(request.url.path, {k.lower(): v for k, v in request.headers.items()}, json.loads(raw))
            )
            status = self.statuses.popleft() if self.statuses else 200
        return Response(status_code=status)

    def events(self, event: str | None = None, instance: str | None = None) -> list[Received]:
        with self._lock:
            items = list(self.received)
        return [
            r
            for r in items
            if (event is None or r.event == event) and (instance is None or r.body.get("instance") == instance)
        ]

    def wait_for(
        self, event: str, count: int = 1, *, instance: str | None = None, timeout: float = 10.0
    ) -> list[Received]:
        return wait_until(lambda: (found := self.events(event, instance)) and len(found) >= count and found, timeout)  # type: ignore[no-any-return]
