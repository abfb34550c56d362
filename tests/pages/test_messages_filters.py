"""The last-messages page lists exactly the newest 100 rows its filters select (number, conversation, period in the
URL), the same rows plain SQL selects, newest first."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from mirage.web.pages.periods import resolve
from tests.pages.helpers import Fleet, refresh, seed_fleet


@pytest.fixture
def fleet(db: Any) -> Fleet:
    f = seed_fleet(db, "filtros", days=20, rounds_per_day=4)
    db.commit()
    refresh(db)
    return f


def _want(db: Any, fleet: Fleet, query: dict[str, str], number: Any = None, conversation: Any = None) -> list[str]:
    period = resolve(query, fleet.zone, datetime.now(UTC))
    rows = db.execute(
        """select id::text from t_messages
            where tenant_id = %(t)s and created_at >= %(start)s and created_at < %(end)s
              and (%(n)s::uuid is null or from_number_id = %(n)s::uuid or to_number_id = %(n)s::uuid)
              and (%(c)s::uuid is null or conversation_id = %(c)s::uuid)
            order by created_at desc, id desc limit 100""",
        {"t": fleet.tenant_id, "start": period.start(), "end": period.end(), "n": number, "c": conversation},
    ).fetchall()
    db.rollback()
    return [r["id"] for r in rows]


CASES = {
    "no-filter": ({"period": "7d"}, None, None),
    "number": ({"period": "30d"}, "a", None),
    "other-number": ({"period": "30d"}, "b", None),
    "waiting-number": ({"period": "30d"}, "c", None),
    "conversation": ({"period": "30d"}, None, "main"),
    "empty-conversation": ({"period": "30d"}, None, "other"),
    "today": ({"period": "today"}, None, None),
    "number-and-conversation-today": ({"period": "today"}, "a", "main"),
}


@pytest.mark.parametrize("case", CASES)
def test_the_messages_page_lists_the_rows_its_filters_select(db: Any, fleet: Fleet, as_viewer: Any, case: str) -> None:
    query, number_key, conversation_key = CASES[case]
    number = fleet.numbers[number_key] if number_key else None
    conversation = fleet.conversations[conversation_key] if conversation_key else None
    params = dict(query)
    if number:
        params["number"] = str(number)
    if conversation:
        params["conversation"] = str(conversation)
    page = as_viewer(fleet).get("/messages", params=params)
    assert page.status_code == 200
    listed = re.findall(r'<tr data-id="([0-9a-f-]{36})"', page.text)
    want = _want(db, fleet, query, number, conversation)
    assert listed == want
    if case in ("number", "conversation", "no-filter"):
        assert len(listed) == 100  # the seed has more: the page stops at the newest 100
    if case in ("waiting-number", "empty-conversation"):
        assert listed == []
