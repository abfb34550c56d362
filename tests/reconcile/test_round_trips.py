"""The number of SQL statements plan and apply send does not grow with the number of rows or tenants."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from mirage.crypto import Keyring, generate_key
from mirage.reconcile.apply import apply_plan
from mirage.reconcile.diff import build_plan
from mirage.reconcile.resources import SPECS, DesiredState, DesiredTenant, Ref, Resource
from mirage.reconcile.state import read_for


class CountingCursor(psycopg.Cursor):  # type: ignore[type-arg]
    statements = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.statements += 1
        return super().execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.statements += 1
        return super().executemany(*args, **kwargs)

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.statements += 1
        return super().copy(*args, **kwargs)


def fleet(tenants: int, numbers: int) -> DesiredState:
    out = {}
    for t in range(tenants):
        slug = f"t{t}"
        res = [
            Resource(
                "tenant",
                (),
                {"name": slug, "plan": "free", "timezone": "UTC", "locale": "en", "prune": False, "archived": False},
            ),
            Resource(
                "personas",
                ("p",),
                {
                    "key": "p",
                    "name": "P",
                    "style": "",
                    "greeting_morning": [],
                    "greeting_afternoon": [],
                    "greeting_evening": [],
                    "phrases": {},
                    "emoji_rate": 0.3,
                },
            ),
        ]
        for n in range(numbers):
            res.append(
                Resource(
                    "numbers",
                    (f"n{n}",),
                    {
                        "key": f"n{n}",
                        "label": f"N{n}",
                        "wa_number": f"+55{t + 10}9{n:08d}",
                        "persona_id": Ref("personas.p"),
                        "warmup_started_on": None,
                        "active": True,
                    },
                )
            )
            res.append(
                Resource(
                    "contacts",
                    (f"+55{t + 10}8{n:08d}",),
                    {"wa_number": f"+55{t + 10}8{n:08d}", "display_name": "", "tags": [], "notes": ""},
                )
            )
        out[slug] = DesiredTenant(slug, tuple(res))
    return DesiredState(out)


def _counted(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url)
    conn.cursor_factory = CountingCursor
    return conn


def _statements(url: str, desired: DesiredState) -> tuple[int, int]:
    """(statements to read the state, statements to apply the creates), on a counting connection."""
    with _counted(url) as conn:
        CountingCursor.statements = 0
        actual = read_for(conn, desired)
        conn.rollback()
        reads = CountingCursor.statements
        plan = build_plan(desired, actual)
        CountingCursor.statements = 0
        apply_plan(plan, conn, desired, ring=Keyring((generate_key(),)), enqueue=None)
        return reads, CountingCursor.statements


@pytest.mark.parametrize(("small", "large"), [((1, 2), (4, 300))])
def test_plan_and_apply_statement_counts_do_not_grow_with_rows(
    db: psycopg.Connection[Any], database_url: str, small: tuple[int, int], large: tuple[int, int]
) -> None:
    few = _statements(database_url, fleet(*small))
    many = _statements(database_url, fleet(*large))
    assert few == many, (few, many)
    reads, writes = few
    assert reads == len(SPECS)  # one query per configuration table, all in one pipeline
    assert writes < 30
