"""The pages show what the runtime wrote: a round run end to end (tick → steps sent through the Evolution simulator
→ webhooks back into Mirage), then the overview, each number's page, the conversation page and the last messages
equal plain SQL counts over the rows the runtime and ingest wrote (no seeded messages).

Real: the runtime harness of tests/runtime (Postgres, Redis, the simulator over HTTP, the webhook app on loopback,
RQ jobs in process, virtual time), and the page app signed in through a `mirage viewers link` token.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.pages.helpers import Fleet, expected, expected_rounds, figures, refresh
from tests.pages.test_figures import _check
from tests.runtime.conftest import MONDAY_0800_SP, Harness
from tests.runtime.conftest import make_harness as runtime_harness  # noqa: F401 (the harness fixture)


def test_every_page_shows_the_figures_of_a_round_the_runtime_ran(
    db: Any,
    runtime_harness: Callable[..., Harness],  # noqa: F811 (the runtime's fixture, imported above)
    as_viewer: Any,
) -> None:
    h = runtime_harness(exchanges=(2, 2))
    assert h.tick()["created"] == 1
    h.run_until(h.clock.now() + timedelta(minutes=15), tick_every=timedelta(minutes=30))
    db.execute(
        "insert into t_users (tenant_id, email, role) values (%s, 'member@acme.example', 'member')", (h.tenant_id,)
    )
    db.commit()
    refresh(db)

    # the tenant sets no zone (UTC); the round ran on the harness's virtual Monday, the webhooks' copies may carry
    # today's real time: one custom period covers both
    since, until = MONDAY_0800_SP.date(), max(MONDAY_0800_SP.date(), datetime.now(UTC).date())
    fleet = Fleet(h.tenant_id, "acme", "UTC", until, emails={"member": "member@acme.example"})
    query = {"period": "custom", "from": since.isoformat(), "to": until.isoformat()}
    client = as_viewer(fleet, "member")

    want = expected(db, fleet, since, until)
    assert (want["sent"], want["received"]) == (4, 4)  # the round's four steps, and the other bot's copies
    overview = client.get("/", params=query)
    assert overview.status_code == 200
    _check(figures(overview.text), want)
    for number in h.numbers.values():
        page = client.get(f"/numbers/{number}", params=query)
        assert page.status_code == 200
        _check(figures(page.text), expected(db, fleet, since, until, number=number))

    assert h.conversation_id is not None
    page = client.get(f"/conversations/{h.conversation_id}", params=query)
    got = figures(page.text)
    _check(got, expected(db, fleet, since, until, conversation=h.conversation_id))
    rounds = expected_rounds(db, fleet, since, until + timedelta(days=1))
    assert rounds["finished"] == 1
    assert (int(got["rounds_started"]), int(got["rounds_finished"])) == (rounds["started"], rounds["finished"])

    listed = client.get("/messages", params=query).text
    stored = h.count("select count(*) as n from t_messages where tenant_id = %s", h.tenant_id)
    assert listed.count("<tr data-id=") == stored == 8
