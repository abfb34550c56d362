"""The worker's effective views, kept between advances one conversation at a time (ADR 0056).

`advance_round` (and `on_message`, which advances inline) needs the view of one conversation for every step of
every round. A view depends only on configuration rows, which give their tenant a fresh
`t_tenants.config_version` whenever a statement writes them (ADR 0045), on the tenant's row and settings, and on
the rows of the active numbers the conversation names. So each advance reads those in one statement
(`db.rounds.tenant_rows`: a few rows, however many numbers the tenant has) and reuses the view built for the
conversation under the same key; when the key differs (or the conversation was never asked for) it loads the
conversation's configuration (7 statements) and builds its view. A changed version, tenant row or settings drops
all of the tenant's other views too. Why a conversation has no view (inactive, a configuration error) is kept
the same way.

Each worker process has its own cache: the key is read from Postgres on every advance, so processes never need
to tell each other anything, and a change committed before an advance's read is what that advance sees.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from mirage.db import rounds as db_rounds
from mirage.engine.view import ConversationView
from mirage.jobs.runtime import Conn, build_views
from mirage.jobs.viewcache import tenant_key

INACTIVE = "conversation inactive"


@dataclass
class _Tenant:
    key: tuple[Any, ...]  # the version, row and settings its views were built from
    # conversation id -> (the rows of the numbers it names, as read when built; its view or why none)
    views: dict[str, tuple[Any, ConversationView | str]] = field(default_factory=dict)


@dataclass
class Lookup:
    """One conversation's view (or why it has none) and how it was found."""

    view: ConversationView | str
    queries: int  # SQL statements sent: 1 when the view was kept, 8 when it was built
    built: bool


@dataclass
class ConversationViews:
    """Effective views by tenant and conversation, valid while the tenant's version, row, settings and active
    numbers read now are those the view was built from. Thread-safe; one per process (`VIEWS`)."""

    _tenants: dict[str, _Tenant] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def view(self, conn: Conn, tenant_id: str, conversation_id: str) -> Lookup:
        """The conversation's view as of now (in `conn`'s transaction), or why it has none: "conversation
        inactive" (inactive, gone, or its tenant archived) or "configuration: <reason>"."""
        t = db_rounds.tenant_rows(conn, tenant_id, conversation_id)
        if t is None:
            with self._lock:
                self._tenants.pop(tenant_id, None)
            return Lookup(INACTIVE, 1, built=False)
        key, numbers = tenant_key(t), t.numbers  # the numbers the conversation names (dicts: compared with ==)
        with self._lock:
            kept = self._tenants.get(tenant_id)
            if kept is not None and kept.key == key:
                entry = kept.views.get(conversation_id)
                if entry is not None and entry[0] == numbers:
                    return Lookup(entry[1], 1, built=False)
        # Read after the key: a view is never older than the key it is kept under (at worst built once more).
        conversations, n = db_rounds.load_configuration(
            conn, {tenant_id: t}, tenant_id=tenant_id, conversation_id=conversation_id
        )
        views, skipped = build_views(db_rounds.Snapshot({tenant_id: t}, conversations, frozenset()))
        found: ConversationView | str = (
            views[0] if views else f"configuration: {skipped[0][2]}" if skipped else INACTIVE
        )
        with self._lock:
            kept = self._tenants.get(tenant_id)
            if kept is None or kept.key != key:
                kept = self._tenants[tenant_id] = _Tenant(key)
            kept.views[conversation_id] = (numbers, found)
        return Lookup(found, 1 + n, built=True)

    def clear(self) -> None:
        with self._lock:
            self._tenants.clear()


VIEWS = ConversationViews()  # the worker process's: shared by its jobs (and threads)
