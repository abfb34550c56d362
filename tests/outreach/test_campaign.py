"""Campaigns end to end against the simulator's people (who reply, ignore, opt out, or are not on WhatsApp):
every target state reached, the caps and the calendar never broken, one check per number, one policy per contact."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from mirage.cli import cli
from mirage.db import outbox
from mirage.engine.cadence import TYPING_MAX_MS
from mirage.engine.calendar import DAYPART_SPANS, contains, local_datetime
from mirage.engine.ramp import new_contacts_cap
from mirage.integrations.evolution_sim import HumanConfig
from mirage.jobs import queues
from mirage.jobs.outreach import CHECK_JOB, outreach_check, outreach_tick
from tests.outreach.conftest import Campaign

SP = "America/Sao_Paulo"
FRI_0800 = datetime(2026, 12, 11, 11, 0, tzinfo=UTC)  # 08:00 in São Paulo
MON_1300 = datetime(2026, 12, 14, 16, 0, tzinfo=UTC)
REPLIER, IGNORER, OPTER, ABSENT, SHARED = (
    "+5511955550001",
    "+5511955550002",
    "+5511955550003",
    "+5511900000000",  # the simulator: not on WhatsApp
    "+5511955550005",
)
EXTRA = tuple(f"+55119555501{i:02d}" for i in range(6))


def humans() -> HumanConfig:
    return HumanConfig(
        reply_probability=0.0,  # nobody answers unless scripted
        scripts={
            REPLIER.lstrip("+"): ["Oi! Tudo bem sim, e você?", "Que legal, conta mais", "Valeu, abraço!"],
            OPTER.lstrip("+"): ["SAIR"],
            SHARED.lstrip("+"): ["Oi, quem é?", "Ah sim, legal", "Tchau!"],
        },
    )


def test_a_campaign_reaches_every_state_within_caps_and_the_calendar(make_campaign: Callable[..., Campaign]) -> None:
    camp = make_campaign(humans=humans(), warmup_started_on=FRI_0800.date(), start=FRI_0800)
    camp.policy(
        "campanha",
        "bot1",
        [(REPLIER, 3), (OPTER, 2), (ABSENT, 1), (IGNORER, 0), (SHARED, 0), *((e, -1) for e in EXTRA)],
    )
    camp.policy("outra", "bot2", [(SHARED, 10)])
    camp.run_until(MON_1300, tick_every=timedelta(minutes=10))
    t = camp.targets()

    assert (t[f"campanha:{REPLIER}"]["status"], t[f"campanha:{REPLIER}"]["reason"]) == ("done", "finished")
    assert t[f"campanha:{REPLIER}"]["rounds_done"] == 2 and t[f"campanha:{REPLIER}"]["replies"] == 2
    assert len(camp.sent_to(REPLIER)) == 3  # opening, one more exchange (max_rounds_per_contact 2), goodbye
    assert (t[f"campanha:{IGNORER}"]["status"], t[f"campanha:{IGNORER}"]["reason"]) == ("done", "no answer")
    assert len(camp.sent_to(IGNORER)) == 1  # no follow-up to silence
    assert t[f"campanha:{OPTER}"]["status"] == "optout" and len(camp.sent_to(OPTER)) == 1
    assert camp.h.count("select count(*) as n from t_optouts where wa_number = %s", OPTER) == 1
    assert (t[f"campanha:{ABSENT}"]["status"], t[f"campanha:{ABSENT}"]["reason"]) == ("done", "not on WhatsApp")
    assert camp.sent_to(ABSENT) == []
    # a contact in two policies: the higher-priority one contacted it, the other never did
    assert (t[f"outra:{SHARED}"]["status"], t[f"outra:{SHARED}"]["reason"]) == ("done", "finished")
    assert (t[f"campanha:{SHARED}"]["status"], t[f"campanha:{SHARED}"]["reason"]) == (
        "done",
        "contacted under policy outra",
    )
    assert (
        camp.h.count(
            "select count(*) as n from t_messages m join t_rounds r on r.id = m.round_id "
            "where r.target_id = (select id from t_outreach_targets where policy_id = %s and contact_id = %s)",
            camp.policies["campanha"],
            camp.contacts[SHARED],
        )
        == 0
    )
    assert len(camp.sent_to(SHARED)) == 3

    # one number per whatsappNumbers call, each number checked once, only numbers that were then contacted or ended
    assert all(len(c) == 1 for c in camp.checks)
    asked = Counter(c[0] for c in camp.checks)
    assert max(asked.values()) == 1
    assert set(asked) <= {REPLIER, IGNORER, OPTER, ABSENT, SHARED, *EXTRA}

    # new contacts per number per day: never above the ramp (day 0 and day 3 both allow 5)
    firsts = camp.h.rows(
        "select p.number_id, t.first_contact_day, count(*) as n from t_outreach_targets t "
        "join t_outreach_policies p on p.id = t.policy_id where t.first_contact_day is not null group by 1, 2"
    )
    for f in firsts:
        assert f["n"] <= new_contacts_cap(FRI_0800.date(), f["first_contact_day"]), f
    bot1 = {f["first_contact_day"]: f["n"] for f in firsts if f["number_id"] == camp.h.numbers["bot1"]}
    # nine people campanha may reach: the cap holds five of them to Monday
    assert bot1 == {FRI_0800.date(): 5, MON_1300.date(): 4}

    # every outreach message left on an allowed weekday, inside the dayparts, outside quiet hours
    sent = camp.h.rows(
        "select sent_at, meta from t_messages where direction = 'out' and meta->>'app_origin' = 'outreach' "
        "and status in ('sent', 'delivered', 'read', 'unknown')"
    )
    assert len(sent) == 3 + 3 + 1 + 1 + len(EXTRA)
    for m in sent:
        local = local_datetime(m["sent_at"], SP)
        assert local.weekday() < 5, local
        assert any(contains(*DAYPART_SPANS[p], local.time()) for p in ("morning", "evening")), local
        assert not contains(datetime.min.time().replace(hour=22), datetime.min.time().replace(hour=7), local.time())

    # the policy's hour and day budgets (messages and checks together) never exceeded
    checks = camp.h.rows("select policy_id, checked_at from t_outreach_targets where checked_at is not null")
    per_hour: Counter[tuple[str, datetime]] = Counter()
    per_day: Counter[tuple[str, object]] = Counter()
    for policy, at in [(m["meta"]["policy_id"], m["sent_at"]) for m in sent] + [
        (str(c["policy_id"]), c["checked_at"]) for c in checks
    ]:
        per_hour[(policy, at.replace(minute=0, second=0, microsecond=0))] += 1
        per_day[(policy, local_datetime(at, SP).date())] += 1
    assert max(per_hour.values()) <= 6 and max(per_day.values()) <= 20

    # outreach rounds are the tick's: the sweeper never hands them to advance_round (which knows conversations)
    assert (
        camp.h.count(
            "select count(*) as n from t_rounds where target_id is not null and abort_reason like 'conversation%%'"
        )
        == 0
    )

    # `mirage status --outreach` says the same, per policy
    result = CliRunner().invoke(cli, ["status", "acme", "--outreach", "--format", "json"])
    assert result.exit_code == 0, result.output
    policies = {p["policy"]: p for p in json.loads(result.output)["tenants"][0]["outreach"]}
    campanha = policies["campanha"]
    assert campanha["targets"] == {
        "pending": 0,
        "in_progress": 4,
        "done": 6,
        "paused": 0,
        "optout": 1,
    }  # Monday's 4 wait
    assert (campanha["new_today"], campanha["number_new_today"], campanha["new_cap"]) == (4, 4, 5)
    assert (campanha["replies"], campanha["optouts"], campanha["runs"]) == (2, 1, True)
    assert campanha["day_used"] == per_day[(str(camp.policies["campanha"]), MON_1300.date())] <= 20
    assert policies["outra"]["targets"]["done"] == 1 and policies["outra"]["replies"] == 2
    text = CliRunner().invoke(cli, ["status", "acme", "--outreach"]).output
    assert "Outreach policies" in text and "in_progress=4 done=6 optout=1" in text and "4 (4/5)" in text


def test_one_policy_runs_per_bot_number_and_a_paused_number_pauses_its_targets(
    make_campaign: Callable[..., Campaign],
) -> None:
    talker = "+5511955550011"
    waiting = "+5511955550012"
    camp = make_campaign(
        humans=HumanConfig(reply_probability=0.0, scripts={talker.lstrip("+"): ["Oi!", "Sim", "Claro", "Ok"]})
    )
    start = camp.h.clock.now()
    camp.policy("a-primeira", "bot1", [(talker, 0)], max_rounds_per_contact=5, min_gap_minutes=10)
    camp.policy("b-segunda", "bot1", [(waiting, 0)])
    camp.run_until(start + timedelta(minutes=50))
    t = camp.targets()
    assert t[f"a-primeira:{talker}"]["status"] == "in_progress" and t[f"a-primeira:{talker}"]["replies"] >= 1
    assert t[f"b-segunda:{waiting}"]["status"] == "pending" and camp.sent_to(waiting) == []
    before = len(camp.sent_to(talker))
    camp.h.db.execute(
        "update t_numbers set paused_at = %s, paused_reason = 'connection close (401)' where id = %s",
        (camp.h.clock.now(), camp.h.numbers["bot1"]),
    )
    camp.h.db.commit()
    camp.run_until(camp.h.clock.now() + timedelta(hours=2))
    t = camp.targets()
    assert (t[f"a-primeira:{talker}"]["status"], t[f"a-primeira:{talker}"]["reason"]) == (
        "paused",
        "number bot1 paused: connection close (401)",
    )
    assert len(camp.sent_to(talker)) == before and camp.sent_to(waiting) == []
    assert camp.h.count("select count(*) as n from t_messages where status = 'queued'") == 0


def test_duplicate_check_jobs_ask_whatsapp_about_a_number_once(make_campaign: Callable[..., Campaign]) -> None:
    person = "+5511955550021"
    camp = make_campaign(humans=HumanConfig(reply_probability=0.0))
    camp.policy("campanha", "bot1", [(person, 0)])
    assert outreach_tick()["started"] == 1
    [target] = [str(r["id"]) for r in camp.h.rows("select id from t_outreach_targets")]
    for i in range(3):  # a lost job re-sent by a later tick, RQ running one twice: the same question each time
        queues.enqueue_unique(queues.ROUNDS, CHECK_JOB, job_id=f"outreach-check:{target}:dup{i}", args=[target])
    camp.h.settle()
    camp.h.clock.advance(timedelta(minutes=1))  # the opening leaves after a reading pause
    camp.h.settle()
    camp.h.clock.advance(timedelta(milliseconds=TYPING_MAX_MS + 1_000))  # and its "typing…" (ADR 0041)
    camp.h.settle()
    assert camp.checks == [[person]]
    assert len(camp.sent_to(person)) == 1  # the opening, once
    camp.h.redis.set(f"mirage:outreach:check:{target}", "1")  # another worker is asking right now
    assert outreach_check(target) == "checking elsewhere"


def test_the_policy_hourly_and_daily_limits_bind_checks_and_messages_together(
    make_campaign: Callable[..., Campaign],
) -> None:
    people = [f"+55119555502{i:02d}" for i in range(6)]
    camp = make_campaign(humans=HumanConfig(reply_probability=0.0))  # an established number: 30 new a day
    start = camp.h.clock.now()  # Monday 08:00 in São Paulo
    camp.policy("curta", "bot1", [(p, 0) for p in people], daily_limit=7, hourly_limit=2)
    camp.run_until(start + timedelta(hours=16), tick_every=timedelta(minutes=10))
    rows = camp.h.rows(
        "select sent_at as at from t_messages where direction = 'out' and meta->>'app_origin' = 'outreach' "
        "and status in ('sent', 'delivered', 'read', 'unknown') "
        "union all select checked_at from t_outreach_targets where checked_at is not null"
    )
    per_hour = Counter(r["at"].replace(minute=0, second=0, microsecond=0) for r in rows)
    assert max(per_hour.values()) <= 2
    # 7 units a day, 2 per new person (the check and the opening): three people, and the last unit stays unused
    assert len(rows) == 6 and len(camp.sent_to(people[0])) == 1
    assert sum(1 for p in people if camp.sent_to(p)) == 3
    states = Counter(t["status"] for t in camp.targets().values())
    assert states == {"in_progress": 3, "pending": 3}


def test_a_number_check_still_counts_against_the_numbers_quota_after_redis_is_flushed(
    make_campaign: Callable[..., Campaign],
) -> None:
    person = "+5511955550031"
    camp = make_campaign(humans=HumanConfig(reply_probability=0.0))
    camp.policy("campanha", "bot1", [(person, 0)])
    assert outreach_tick()["started"] == 1
    camp.h.settle()  # the check ran and took one unit of bot1's hour and day
    [check] = camp.h.rows("select checked_at from t_outreach_targets where checked_at is not null")
    camp.h.redis.flushdb()  # Redis restarted empty: the counters are rebuilt from Postgres
    number = str(camp.h.numbers["bot1"])
    hour = check["checked_at"].replace(minute=0, second=0, microsecond=0)
    with camp.h.db.transaction():
        spent = outbox.counted_since(camp.h.db, number, hour, hour + timedelta(hours=1))
    sent = len(camp.sent_to(person))
    assert spent == 1 + sent  # the check is a unit of the truth, not only of the lost counter
