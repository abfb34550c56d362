"""Outreach decisions (ADR 0037): which target a policy starts, what a started one owes, when it ends, and whether a
message to a person may leave at this instant. Pure: state and `now` in, decisions out (rng passed in).

A target walks `pending -> in_progress -> done | paused | optout`. The bot sends an opening (exchange 1), then
waits for the person. Each answer earns one more exchange until `max_rounds_per_contact` exchanges were sent; the
answer after the last one gets a gentle goodbye. No answer within the policy's `reply_wait_hours` ends the target.
The bot only ever writes after the person wrote (or first), so a person never has more than MAX_UNANSWERED messages
in a row.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from mirage.config.types import DAYPARTS, DOWS, Daypart
from mirage.engine.calendar import DAYPART_SPANS, contains, local_datetime, tenant_zone
from mirage.engine.generation import Step
from mirage.engine.optout import Detection, detect
from mirage.engine.ramp import new_contacts_cap

REPLY_WAIT_HOURS = 24  # the policy's default wait for an answer after our last message (then the target is done)
MAX_UNANSWERED = 2  # messages in a row a person may get without answering, ever
GAP_JITTER = 0.25  # an answer waits min_gap_minutes plus up to this share of it
THINK = (timedelta(seconds=40), timedelta(minutes=4))  # and never less than a person's reading-and-typing pause
CHECK_UNITS = 1  # the whatsappNumbers check spends this much of the policy's hourly / daily budget


@dataclass(frozen=True)
class PolicyState:
    """A policy as the tick sees it: its rules, the number that sends, and what it spent this hour and day."""

    id: str
    tenant_id: str
    key: str
    number_id: str
    number_key: str
    number_can_send: bool
    number_paused: str | None  # an operator-visible pause of the number (targets pause with it)
    warmup_started_on: date | None
    timezone: str
    quiet: tuple[time, time]
    dayparts: tuple[str, ...]
    allow_days: tuple[str, ...]
    daily_limit: int
    hourly_limit: int
    max_rounds: int
    min_gap_minutes: int
    keywords: tuple[str, ...] = ()
    reply_wait_hours: int = REPLY_WAIT_HOURS  # no answer this long after our last message: the target is done
    used_hour: int = 0  # outreach messages that left (or may have) this clock hour, plus checks
    used_day: int = 0  # the same for the tenant-local day
    new_today: int = 0  # first contacts of the number today, openings in flight included
    last_start_at: datetime | None = None  # the number's latest start of a target (openings are spread out)
    runs: bool = True  # False: another policy of the same number runs (one policy per bot number)


@dataclass(frozen=True)
class Reply:
    id: str
    body: str
    verdict: str | None = None  # the ingest's opt-out verdict (`meta.optout`) once it scanned the message


@dataclass(frozen=True)
class TargetState:
    id: str
    policy_id: str
    contact_id: str
    status: str
    priority: int
    created_at: datetime
    rounds_done: int = 0
    unanswered: int = 0
    next_kind: str | None = None
    next_action_at: datetime | None = None
    last_contact_at: datetime | None = None
    checked_at: datetime | None = None
    opted_out: bool = False
    blocked: bool = False  # may not be messaged now (opted out, or a possible opt-out awaits a person's review)
    taken_by: str | None = None  # key of another policy that contacts (or contacted) this contact
    live_message: bool = False  # a message to this contact is queued or being sent
    replies: tuple[Reply, ...] = field(default_factory=tuple)  # the person's messages not attached yet


# --- decisions -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """pending -> in_progress: check the number on WhatsApp, then open."""

    target: str


@dataclass(frozen=True)
class Check:
    """A started target still waits for its WhatsApp check (the job was lost or failed): ask again."""

    target: str


@dataclass(frozen=True)
class Queue:
    """Queue the owed message (`kind`) as exchange `step` of the target's live round."""

    target: str
    kind: str
    step: int


@dataclass(frozen=True)
class Answered:
    """The person wrote: attach the messages and owe `next_kind` from `next_action_at`."""

    target: str
    messages: tuple[str, ...]
    next_kind: str
    next_action_at: datetime


@dataclass(frozen=True)
class End:
    """Leave `in_progress` / `pending` for `status` (done, paused, optout) with a reason."""

    target: str
    status: str
    reason: str
    keyword: str | None = None  # an opt-out word the person wrote (then t_optouts gets it)
    message: str | None = None


Decision = Start | Check | Queue | Answered | End


def allowed_at(
    now: datetime, tz: str, quiet: tuple[time, time], dayparts: Iterable[str], days: Iterable[str]
) -> str | None:
    """Why outreach may not send at `now` (not an allowed day, outside the dayparts, quiet hours), or None."""
    local = local_datetime(now, tz)
    dow = DOWS[(local.weekday() + 1) % 7]
    if dow not in set(days):
        return f"{dow} is not an allowed day"
    if contains(quiet[0], quiet[1], local.time()):
        return "quiet hours"
    if not any(contains(*DAYPART_SPANS[p], local.time()) for p in dayparts if p in DAYPART_SPANS):
        return f"{local:%H:%M} is outside the dayparts {', '.join(dayparts)}"
    return None


def verdict(reply: Reply, keywords: Iterable[str]) -> Detection:
    """Whether a reply opts out: the ingest's verdict when it scanned the message, else the same detector now
    (mirage.engine.optout: the built-in pt-BR/en lists and the policy's keywords)."""
    if reply.verdict == "none":
        return Detection("none")
    found = detect(reply.body, keywords)
    if reply.verdict in ("optout", "ambiguous") and found.verdict == "none":
        return Detection(reply.verdict)  # type: ignore[arg-type]
    return found


def new_contact_cap(p: PolicyState, now: datetime) -> int:
    return new_contacts_cap(p.warmup_started_on, local_datetime(now, p.timezone).date())


def start_spacing(p: PolicyState) -> timedelta:
    """Least time between two starts on a number: the policy's hour spread over its hourly limit."""
    return timedelta(minutes=60 / max(1, p.hourly_limit))


def reply_wait(p: PolicyState) -> timedelta:
    """How long the person has to answer our last message before the target ends `done` (`reply_wait_hours`)."""
    return timedelta(hours=p.reply_wait_hours)


def answer_at(p: PolicyState, last_contact_at: datetime | None, now: datetime, rng: random.Random) -> datetime:
    """When the answer to a person may leave: min_gap_minutes after our last message, plus jitter, and never
    sooner than a reading-and-typing pause from now."""
    gap = timedelta(minutes=p.min_gap_minutes)
    earliest = (last_contact_at or now) + gap + gap * rng.uniform(0, GAP_JITTER)
    pause = THINK[0] + (THINK[1] - THINK[0]) * rng.random()
    return max(earliest, now + pause)


def claim_refusal(
    p: PolicyState, t: TargetState, kind: str, step: int, now: datetime, *, policy_active: bool = True
) -> str | None:
    """Why an outreach message may not leave at `now` (re-checked inside the claim's transaction), or None."""
    if t.status != "in_progress":
        return f"target {t.status}"
    if t.opted_out or t.blocked:
        return "contact opted out or under review"
    if not policy_active or not p.runs:
        return f"policy {p.key} does not run"
    if t.next_kind != kind or t.rounds_done != step:
        return "no longer owed"
    why = allowed_at(now, p.timezone, p.quiet, p.dayparts, p.allow_days)
    if why:
        return why
    if p.used_hour >= p.hourly_limit:
        return f"policy {p.key} hourly_limit reached"
    if p.used_day >= p.daily_limit:
        return f"policy {p.key} daily_limit reached"
    if kind == "opening" and p.new_today >= new_contact_cap(p, now):
        return f"number {p.number_key} reached today's new contacts"
    if t.unanswered >= MAX_UNANSWERED:
        return f"{MAX_UNANSWERED} messages in a row unanswered"
    if t.last_contact_at is not None and now < t.last_contact_at + timedelta(minutes=p.min_gap_minutes):
        return "min_gap_minutes not over"
    return None


def _ordered(targets: Iterable[TargetState]) -> list[TargetState]:
    return sorted(targets, key=lambda t: (-t.priority, t.created_at, t.id))


def plan_policy(p: PolicyState, targets: Sequence[TargetState], now: datetime, rng: random.Random) -> list[Decision]:
    """What one policy does at `now`: end, answer, queue owed messages, and start at most one new target."""
    out: list[Decision] = []
    closed = allowed_at(now, p.timezone, p.quiet, p.dayparts, p.allow_days)
    spent = replace(p)
    live = [t for t in targets if t.status == "in_progress"]
    for t in _ordered(live):
        decision = _live(spent, t, closed, now, rng)
        if decision is None:
            continue
        out.append(decision)
        if isinstance(decision, Queue):
            spent = replace(spent, used_hour=spent.used_hour + 1, used_day=spent.used_day + 1)
    started = False
    for t in _ordered(x for x in targets if x.status == "pending"):
        if t.opted_out:
            out.append(End(t.id, "optout", "opted out before the first contact"))
        elif t.taken_by is not None:
            out.append(End(t.id, "done", f"contacted under policy {t.taken_by}"))
        elif not started and not t.blocked and _may_start(spent, closed, now):
            out.append(Start(t.id))
            started = True
    return out


def _may_start(p: PolicyState, closed: str | None, now: datetime) -> bool:
    if closed or not p.runs or not p.number_can_send:
        return False
    need = CHECK_UNITS + 1  # the check and the opening come out of the same budgets
    if p.hourly_limit - p.used_hour < need or p.daily_limit - p.used_day < need:
        return False
    if p.new_today >= new_contact_cap(p, now):
        return False
    return p.last_start_at is None or now >= p.last_start_at + start_spacing(p)


def _live(p: PolicyState, t: TargetState, closed: str | None, now: datetime, rng: random.Random) -> Decision | None:
    if t.opted_out:
        return End(t.id, "optout", "contact opted out")
    if p.number_paused:
        return End(t.id, "paused", f"number {p.number_key} paused: {p.number_paused}")
    if t.blocked:
        return None  # a possible opt-out awaits a person's review: nothing to this contact meanwhile
    if t.replies and t.rounds_done > 0 and t.next_kind != "opening":
        for r in t.replies:
            d = verdict(r, p.keywords)
            if d.verdict == "optout":
                return End(t.id, "optout", f"wrote '{d.phrase or r.body[:40]}'", keyword=d.phrase or "", message=r.id)
            if d.verdict == "ambiguous":
                return None  # might be an opt-out: no answer; the ingest pauses the contact for a person's review
        kind = "reply" if t.rounds_done < p.max_rounds else "goodbye"
        return Answered(t.id, tuple(r.id for r in t.replies), kind, answer_at(p, t.last_contact_at, now, rng))
    if t.next_kind is None:
        if t.last_contact_at is not None and now >= t.last_contact_at + reply_wait(p):
            return End(t.id, "done", "no answer")
        if t.last_contact_at is None:  # started, nothing owed, nothing sent: a lost start
            return End(t.id, "done", "nothing left to send")
        return None
    if t.live_message:
        return None
    if closed or not p.runs or not p.number_can_send:
        return None
    if t.next_kind == "opening" and t.checked_at is None:
        return Check(t.id) if p.hourly_limit - p.used_hour >= CHECK_UNITS + 1 else None
    if t.next_action_at is not None and now < t.next_action_at:
        return None
    if t.last_contact_at is not None and now < t.last_contact_at + timedelta(minutes=p.min_gap_minutes):
        return None
    if p.used_hour >= p.hourly_limit or p.used_day >= p.daily_limit:
        return None
    if t.unanswered >= MAX_UNANSWERED:
        return End(t.id, "done", f"{MAX_UNANSWERED} messages in a row unanswered")
    if t.next_kind == "opening" and p.new_today > new_contact_cap(p, now):
        return None  # started past the cap (a cap lowered since): wait for another day
    return Queue(t.id, t.next_kind, t.rounds_done)


def spans(now: datetime, tz: str) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime], date]:
    """The clock hour and the tenant-local day that hold `now` (UTC, half-open) and that day's date."""
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    local = local_datetime(now, tz)
    start = datetime.combine(local.date(), time(0), tzinfo=tenant_zone(tz))
    end = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=tenant_zone(tz))
    return (hour, hour + timedelta(hours=1)), (start.astimezone(UTC), end.astimezone(UTC)), local.date()


def daypart_at(now: datetime, tz: str) -> Daypart:
    """The outreach daypart holding `now` in the tenant zone (morning outside every span, for greetings)."""
    local = local_datetime(now, tz).time()
    return next((p for p in DAYPARTS if contains(*DAYPART_SPANS[p], local)), "morning")


def step_kind(kind: str, step: int, rng: random.Random) -> Step:
    """The text-generation step for an outreach message: a daypart greeting opens, questions and comments follow."""
    if kind == "opening":
        return "greeting"
    if kind == "goodbye":
        return "goodbye"
    follow_ups: tuple[Step, ...] = ("comment", "answer")
    return "question" if step % 2 else rng.choice(follow_ups)
