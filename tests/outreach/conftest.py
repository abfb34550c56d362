"""Outreach harness: the runtime harness (real Postgres, Redis, the Evolution simulator and its simulated people,
the webhook app, in-process RQ workers, a settable clock) plus policies, contacts and targets, driven by
`outreach_tick` instead of the conversation tick."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from mirage.integrations.evolution.client import EvolutionClient
from mirage.jobs.outreach import outreach_tick
from mirage.jobs.sweep import sweep_outbox
from tests.runtime import conftest as runtime_harness
from tests.runtime.conftest import Harness

make_harness = runtime_harness.make_harness  # the runtime's fixture, shared


@dataclass
class Campaign:
    h: Harness
    contacts: dict[str, uuid.UUID] = field(default_factory=dict)  # wa number -> contact id
    policies: dict[str, uuid.UUID] = field(default_factory=dict)
    checks: list[list[str]] = field(default_factory=list)  # every whatsappNumbers call's numbers
    ticks: int = 0

    def contact(self, wa: str) -> uuid.UUID:
        if wa not in self.contacts:
            self.contacts[wa] = self.h.db.execute(
                "insert into t_contacts (tenant_id, wa_number, display_name) values (%s, %s, %s) returning id",
                (self.h.tenant_id, wa, f"Pessoa {wa[-4:]}"),
            ).fetchone()["id"]
            self.h.db.commit()
        return self.contacts[wa]

    def policy(self, key: str, number: str, targets: Sequence[tuple[str, int]], **options: Any) -> uuid.UUID:
        cols = {
            "daily_limit": 20,
            "hourly_limit": 6,
            "max_rounds_per_contact": 2,
            "min_gap_minutes": 30,
            "dayparts": ["morning", "evening"],
            "allow_days": ["mon", "tue", "wed", "thu", "fri"],
            **options,
        }
        names = ", ".join(cols)
        marks = ", ".join(["%s"] * len(cols))
        pid = self.h.db.execute(
            f"insert into t_outreach_policies (tenant_id, key, number_id, {names}) "
            f"values (%s, %s, %s, {marks}) returning id",
            (self.h.tenant_id, key, self.h.numbers[number], *cols.values()),
        ).fetchone()["id"]
        for wa, priority in targets:
            self.h.db.execute(
                "insert into t_outreach_targets (tenant_id, policy_id, contact_id, priority) values (%s, %s, %s, %s)",
                (self.h.tenant_id, pid, self.contact(wa), priority),
            )
        self.h.db.commit()
        self.policies[key] = pid
        return pid  # type: ignore[no-any-return]

    def run_until(self, end: datetime, tick_every: timedelta = timedelta(minutes=5)) -> None:
        """Advance virtual time to `end`: an outreach tick and a sweep every `tick_every`, scheduled jobs between."""
        h = self.h
        next_tick = h.clock.now()
        while h.clock.now() < end:
            if h.clock.now() >= next_tick:
                outreach_tick()
                sweep_outbox()  # as in production: the cron runs the sweeper beside the tick
                self.ticks += 1
                next_tick = h.clock.now() + tick_every
            h.settle()
            upcoming = h.next_scheduled()
            target = min(t for t in (upcoming, next_tick, end) if t is not None)
            h.clock.set(max(target, h.clock.now()))

    def targets(self) -> dict[str, dict[str, Any]]:
        rows = self.h.rows(
            "select c.wa_number, p.key as policy, t.status::text, t.reason, t.rounds_done, t.replies, t.unanswered, "
            "t.checked_at, t.first_contact_day from t_outreach_targets t join t_contacts c on c.id = t.contact_id "
            "join t_outreach_policies p on p.id = t.policy_id order by p.key, c.wa_number"
        )
        return {f"{r['policy']}:{r['wa_number']}": r for r in rows}

    def sent_to(self, wa: str) -> list[str]:
        """Texts the simulator accepted for this person (what really reached their phone)."""
        digits = wa.lstrip("+")
        return [m.text for m in list(self.h.sim.world.messages.values()) if m.to_jid.startswith(digits)]


@pytest.fixture
def make_campaign(
    make_harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Campaign]]:
    def make(*, humans: Any, warmup_started_on: date | None = None, start: datetime | None = None) -> Campaign:
        h = make_harness(numbers=2, sim_options={"human": humans})
        h.db.execute("update t_conversations set active = false where tenant_id = %s", (h.tenant_id,))
        h.db.execute(
            "update t_numbers set warmup_started_on = %s where tenant_id = %s", (warmup_started_on, h.tenant_id)
        )
        h.db.commit()
        camp = Campaign(h)
        real = EvolutionClient.whatsapp_numbers

        def spy(self: EvolutionClient, instance: str, numbers: Any, *, token: str | None = None) -> Any:
            asked = list(numbers)
            camp.checks.append(asked)
            return real(self, instance, asked, token=token)

        monkeypatch.setattr(EvolutionClient, "whatsapp_numbers", spy)
        if start is not None:
            h.clock.set(start)
        return camp

    yield make
