"""Rounds (ADR 0004, ADR 0028): which conversation starts a round now, and the script a round follows; all pure.

`plan_rounds(views, states, now, rng)` is the 60-second tick's decision. A round has a deterministic identity
(conversation, tenant-local window date, daypart, sequence in that window), so the shell can insert it with
ON CONFLICT DO NOTHING: two ticks at once, or a tick re-run after a crash, never create a second round.

A round is 2 x `exchanges` messages, alternating from the starter: greeting -> (comment -> question -> answer)*
-> goodbye. `turn_number_id` is the number whose message is due; it passes to the other number only when that
message reached it (the receiver's inbound webhook), so a bot answers a bot only on its turn.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from mirage.engine import cadence
from mirage.engine.calendar import DAY_MINUTES, contains, local_datetime, minute_of_day
from mirage.engine.generation.topics import TopicPick
from mirage.engine.generation.topics import choose_topic as pick_topic
from mirage.engine.quickinit import quick_init
from mirage.engine.text import normalize_text
from mirage.engine.view import CLOSED_DAY, ConversationView, Day, Effective, Pair, Topic, Window

DOW_OF_WEEKDAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() -> dow
DELIVERY_ALLOWANCE_MS = 30_000  # per message: the webhook that says the other bot got it
NO_REPEAT_DAYS = 7


# --- state the shell loads -------------------------------------------------------------------------------------


@quick_init
@dataclass(frozen=True)
class RoundRecord:
    """A stored round, as much as planning needs."""

    window_date: date | None
    daypart: str | None
    seq: int
    status: str
    created_at: datetime
    finished_at: datetime | None = None
    topic_id: str | None = None
    number_a_id: str | None = None
    number_b_id: str | None = None


@dataclass(frozen=True)
class PlanState:
    """What the tick knows about one conversation beyond its configuration."""

    rounds: Sequence[RoundRecord] = ()  # recent rounds (today's windows at least), any order
    total_rounds: int = 0  # all the conversation's rounds ever: rotation of pairs, starters and topics
    busy_numbers: frozenset[str] = frozenset()  # numbers in a planned or active round of any conversation
    used: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # number -> (sent this hour, sent today)
    limits: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # number -> (hourly, daily) limits


# --- decisions -----------------------------------------------------------------------------------------------


@quick_init
@dataclass(frozen=True)
class RoundPlan:
    """A round to create now."""

    tenant_id: str
    conversation_id: str
    window_date: date
    daypart: str
    seq: int
    pairing_id: str | None
    starter: str
    responder: str
    exchanges: int
    script: tuple[str, ...]
    topic_id: str | None
    start_at: datetime
    deadline_at: datetime

    @property
    def identity(self) -> str:
        return f"{self.conversation_id}:{self.window_date.isoformat()}:{self.daypart}:{self.seq}"


@quick_init  # the tick makes one per conversation that starts nothing
@dataclass(frozen=True)
class Skip:
    """No round for this conversation now, and why (shown by `mirage status`)."""

    conversation_id: str
    reason: str
    not_before: datetime | None = None


def in_quiet_hours(quiet: tuple[time, time], now: datetime, tz: str) -> bool:
    """Whether the tenant-local wall time at `now` falls inside quiet hours (which may cross midnight)."""
    return contains(quiet[0], quiet[1], local_datetime(now, tz).time())


def minutes_until_quiet(quiet: tuple[time, time], local: datetime) -> float:
    """Minutes from `local` to the next start of quiet hours (0 when inside them)."""
    if contains(quiet[0], quiet[1], local.time()):
        return 0.0
    if quiet[0] == quiet[1]:
        return float(DAY_MINUTES)  # no quiet hours at all: a day is more than any round needs
    now_min = local.hour * 60 + local.minute + local.second / 60
    return (minute_of_day(quiet[0]) - now_min) % DAY_MINUTES


@lru_cache(maxsize=64)  # the tick asks for every round it plans
def script(exchanges: int) -> tuple[str, ...]:
    """The step kinds of a round of `exchanges` exchanges (2 x exchanges messages, alternating speakers)."""
    n = 2 * max(1, exchanges)
    if n == 2:
        return ("greeting", "goodbye")
    if n == 4:
        return ("greeting", "question", "answer", "goodbye")
    # greeting, greeting back, a comment, then question/answer pairs, goodbye: every question gets its answer.
    return ("greeting", "greeting", "comment", *(("question", "answer") * ((n - 4) // 2)), "goodbye")


def round_budget(view: ConversationView, exchanges: int) -> timedelta:
    """The longest a round of `exchanges` should take: every message's think + type time plus its delivery."""
    per_message = cadence.max_message_ms(view.settings.max_delay_ms, view.settings.humanize) + DELIVERY_ALLOWANCE_MS
    return timedelta(milliseconds=2 * exchanges * per_message)


def pause_minutes(view: ConversationView, last: RoundRecord, pause: tuple[int, int]) -> int:
    """The random pause after `last`, drawn from its identity so every tick (and process) draws the same one."""
    low, high = pause
    seed = f"{view.tenant_slug}/{view.key}:{last.window_date}:{last.daypart}:{last.seq}"  # stable across databases
    return _pause(seed, low, max(low, high))


@lru_cache(maxsize=1 << 16)
def _pause(seed: str, low: int, high: int) -> int:  # each tick asks again for every conversation's last round
    return random.Random(seed).randint(low, high)


def _window_of(day: Day, t: time) -> tuple[Window, int, int, int] | None:
    for w in day.windows:
        if w.start <= t < w.end:
            return w, day.max_rounds_per_window, day.pause_min, day.pause_max
    return None


@dataclass(frozen=True)
class _Slot:
    """Where a conversation stands at the tick's instant in its zone, under its quiet hours and weekday schedule."""

    local: datetime
    today: date  # local.date()
    quiet_now: bool
    quiet_in: timedelta  # until quiet hours begin (0 inside them)
    window: tuple[Window, int, int, int] | None  # the open window, its round cap and pause range


class _Tick:
    """What every conversation of one tick at `now` would otherwise work out again: the wall time in each zone,
    quiet hours, the open window of each (shared) weekday schedule, round budgets and whether a round of a
    budget still fits. Values only: every decision stays in plan_conversation."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._zones: dict[str, tuple[datetime, str, dict[tuple[Any, ...], tuple[Day, _Slot]]]] = {}
        self._budget: dict[tuple[int, bool, int], timedelta] = {}
        self._fits: dict[tuple[int, datetime, timedelta], tuple[Window, bool]] = {}
        self._room: dict[tuple[int, int, int], tuple[_Slot, Effective, timedelta, str | None]] = {}

    def slot(self, view: ConversationView) -> _Slot:
        zone = self._zones.get(view.timezone)
        if zone is None:
            local = local_datetime(self.now, view.timezone)
            zone = self._zones[view.timezone] = (local, DOW_OF_WEEKDAY[local.weekday()], {})
        local, dow, slots = zone
        day = view.week.get(dow, CLOSED_DAY)
        key = (view.quiet, id(day))  # views share their Day objects (mirage.engine.view interns them)
        got = slots.get(key)
        if got is None or got[0] is not day:
            quiet = view.quiet
            got = slots[key] = (
                day,
                _Slot(
                    local,
                    local.date(),
                    contains(quiet[0], quiet[1], local.time()),
                    timedelta(minutes=minutes_until_quiet(quiet, local)),
                    _window_of(day, local.time()),
                ),
            )
        return got[1]

    def budget(self, view: ConversationView, exchanges: int) -> timedelta:
        key = (view.settings.max_delay_ms, view.settings.humanize, exchanges)
        got = self._budget.get(key)
        if got is None:
            got = self._budget[key] = round_budget(view, exchanges)
        return got

    def room(self, view: ConversationView, slot: _Slot, window: Window, exchanges: int) -> tuple[timedelta, str | None]:
        """The budget of a round of `exchanges` started now at `slot` (in `window`, the slot's), and why it cannot
        start there (None when it can): the same for every conversation of equal settings and slot."""
        settings = view.settings
        key = (id(slot), id(settings), exchanges)
        got = self._room.get(key)
        if got is None or got[0] is not slot or got[1] is not settings:
            budget = self.budget(view, exchanges)
            why = None
            if not self.fits(window, slot.local, budget):
                why = "too little of the window left for a round"
            elif budget > slot.quiet_in:
                why = "quiet hours begin before a round could end"
            got = self._room[key] = (slot, settings, budget, why)
        return got[2], got[3]

    def fits(self, window: Window, local: datetime, budget: timedelta) -> bool:
        """Whether a round of `budget` started at `local` ends before `window` does."""
        key = (id(window), local, budget)
        got = self._fits.get(key)
        if got is None or got[0] is not window:
            end = local.replace(hour=window.end.hour, minute=window.end.minute, second=0, microsecond=0)
            got = self._fits[key] = (window, local + budget <= end)
        return got[1]


def _eligible(
    view: ConversationView, state: PlanState, pair: Pair, exchanges: int, planned: AbstractSet[str]
) -> str | None:
    numbers, busy, used_of, limits_of = view.numbers, state.busy_numbers, state.used, state.limits
    for number_id in (pair.a, pair.b):
        n = numbers.get(number_id)
        if n is None:
            return f"number {number_id} unknown"
        if not (n.active and n.status == "open" and n.paused_reason is None):  # NumberView.can_send, inlined
            return f"number {n.key} is {(n.paused_reason and 'paused') or n.status}"
        if number_id in busy or number_id in planned:
            return f"number {n.key} is in another round"
        used = used_of.get(number_id) or (0, 0)
        limits = limits_of.get(number_id) or (view.settings.hourly_burst_limit, view.settings.daily_limit)
        if limits[0] - used[0] < exchanges or limits[1] - used[1] < exchanges:
            return f"number {n.key} has no quota for a whole round"
    return None


def _choose_pair(
    view: ConversationView, state: PlanState, exchanges: int, rng: random.Random, planned: AbstractSet[str]
) -> tuple[Pair | None, str]:
    pairs = view.pairs
    if not pairs:
        return None, "no pair of bot numbers"
    candidates: Sequence[Pair]
    if view.mode == "pair":
        why = _eligible(view, state, pairs[0], exchanges, planned)
        return (pairs[0], "") if why is None else (None, why)
    elif view.mode == "round_robin":
        k = state.total_rounds % len(pairs)
        candidates = pairs[k:] + pairs[:k]
    else:
        shuffled = list(pairs)
        rng.shuffle(shuffled)
        candidates = shuffled
    reason = ""
    for pair in candidates:
        why = _eligible(view, state, pair, exchanges, planned)
        if why is None:
            return pair, ""
        reason = reason or why
    return None, reason


def _starter(view: ConversationView, state: PlanState, pair: Pair, rng: random.Random) -> tuple[str, str]:
    if pair.starts == "b":
        return pair.b, pair.a
    if pair.starts == "either":
        a_starts = state.total_rounds % 2 == 0 if view.mode == "round_robin" else rng.random() < 0.5
        return (pair.a, pair.b) if a_starts else (pair.b, pair.a)
    return pair.a, pair.b


def choose_topic(
    view: ConversationView, state: PlanState, now: datetime, rng: random.Random, today: date | None = None
) -> Topic | None:
    """The topic of the next round: the one rule of docs/generation.md#topics (mirage.engine.generation.topics:
    the strategy, `topic_refresh_minutes`, active dates in the tenant's zone), with the topic of the latest
    rounds as the one in force since the first of them. `today`: the tenant-local date at `now`, when known."""
    current = _topic_in_force(view, state) if state.rounds else None
    pick = pick_topic(
        {t.key: t for t in view.topics},
        view.topic_strategy,
        current,
        now,
        view.timezone,
        view.topic_refresh_minutes,
        rng,
        today,
    )
    for t in view.topics:
        if t.key == pick.key:
            return t
    return None


def _topic_in_force(view: ConversationView, state: PlanState) -> TopicPick | None:
    """The topic of the latest rounds, in force since the first of them that had it."""
    by_id = {t.id: t for t in view.topics}
    ordered = sorted((r for r in state.rounds if r.topic_id in by_id), key=lambda r: r.created_at)
    if not ordered:
        return None
    topic_id, since = ordered[-1].topic_id, ordered[-1].created_at
    for r in reversed(ordered):
        if r.topic_id != topic_id:
            break
        since = r.created_at
    return TopicPick(by_id[str(topic_id)].key, since)


def _cheap_checks(
    view: ConversationView, state: PlanState, now: datetime, tick: _Tick
) -> Skip | tuple[_Slot, Window, list[RoundRecord]]:
    """The checks that need neither randomness nor quotas, in order: quiet hours, the open window, a running
    round, the rounds already in the window, the pause since the last one. A Skip, or where the conversation
    stands, its open window and its rounds in that window."""
    slot = tick.slot(view)
    if slot.quiet_now:
        return Skip(view.id, "quiet hours")
    if slot.window is None:
        return Skip(view.id, "outside its windows")
    window, max_rounds, pause_min, pause_max = slot.window
    rounds = state.rounds
    if not rounds:
        if max_rounds <= 0:
            return Skip(view.id, f"{max_rounds} round(s) already in this window")
        return slot, window, []
    if any(r.status in ("planned", "active") for r in rounds):
        return Skip(view.id, "a round is running")
    today, part = slot.today, window.daypart
    in_window = [r for r in rounds if r.window_date == today and r.daypart == part]
    if len(in_window) >= max_rounds:
        return Skip(view.id, f"{max_rounds} round(s) already in this window")
    last = max(rounds, key=lambda r: r.finished_at or r.created_at)
    ended = last.finished_at or last.created_at
    ready = ended + timedelta(minutes=pause_minutes(view, last, (pause_min, pause_max)))
    if now < ready:
        return Skip(view.id, "pausing between rounds", ready)
    return slot, window, in_window


_Checked = Skip | tuple[_Slot, Window, list[RoundRecord]]


@dataclass(frozen=True)
class CheapChecks:
    """The cheap checks of one tick's views at `now`, in view order (see `cheap_checks`)."""

    now: datetime
    results: tuple[_Checked, ...]
    tick: _Tick = field(repr=False, compare=False)


def cheap_checks(views: Sequence[ConversationView], states: Mapping[str, PlanState], now: datetime) -> CheapChecks:
    """The checks that need neither randomness nor quotas (quiet hours, window, running round, rounds in the
    window, pause) for every view at `now`. A shell passes them to plan_rounds with the same views and states
    (quota usage added) so they run once, and reads quota counters only for the views whose result is no Skip."""
    tick = _Tick(now)
    empty = PlanState()
    return CheapChecks(now, tuple(_cheap_checks(v, states.get(v.id, empty), now, tick) for v in views), tick)


def plan_conversation(
    view: ConversationView,
    state: PlanState,
    now: datetime,
    rng: random.Random,
    planned: AbstractSet[str] = frozenset(),
    tick: _Tick | None = None,
    checked: _Checked | None = None,
) -> RoundPlan | Skip:
    """Whether `view` starts a round at `now`, and which one; `planned`: numbers this tick put in a round already.
    Cheap rejects come first (quiet hours, window, running round, rounds in the window, pause); `tick` carries
    what the other conversations of the same tick worked out already, `checked` the cheap checks' result when
    they ran already (plan_rounds)."""
    tick = tick if tick is not None and tick.now == now else _Tick(now)
    if checked is None:
        checked = _cheap_checks(view, state, now, tick)
    if isinstance(checked, Skip):
        return checked
    return _decide(view, state, now, rng, planned, tick, checked)


def _decide(
    view: ConversationView,
    state: PlanState,
    now: datetime,
    rng: random.Random,
    planned: AbstractSet[str],
    tick: _Tick,
    checked: tuple[_Slot, Window, list[RoundRecord]],
) -> RoundPlan | Skip:
    """plan_conversation after the cheap checks passed: the round's length, room for it, its pair, starter, topic."""
    slot, window, in_window = checked
    exchanges = rng.randint(view.exchanges_min, view.exchanges_max)
    budget, why = tick.room(view, slot, window, exchanges)
    if why is not None:
        return Skip(view.id, why)
    quiet_in = slot.quiet_in
    pair, why = _choose_pair(view, state, exchanges, rng, planned)
    if pair is None:
        return Skip(view.id, why)
    starter, responder = _starter(view, state, pair, rng)
    topic = choose_topic(view, state, now, rng, slot.today)
    seq = max((r.seq for r in in_window), default=0) + 1 if in_window else 1
    return RoundPlan(
        tenant_id=view.tenant_id,
        conversation_id=view.id,
        window_date=slot.today,
        daypart=window.daypart,
        seq=seq,
        pairing_id=pair.pairing_id,
        starter=starter,
        responder=responder,
        exchanges=exchanges,
        script=script(exchanges),
        topic_id=topic.id if topic else None,
        start_at=now,
        deadline_at=now + min(2 * budget, quiet_in),
    )


def plan_rounds(
    views: Sequence[ConversationView],
    states: Mapping[str, PlanState],
    now: datetime,
    rng: random.Random,
    checks: CheapChecks | None = None,
) -> list[RoundPlan | Skip]:
    """The tick: one decision per conversation. A number planned into one round is busy for the next ones.
    `checks`: `cheap_checks(views, states, now)` run already (with these states' rounds), so they run once."""
    if checks is None or checks.now != now or len(checks.results) != len(views):
        checks = cheap_checks(views, states, now)
    out: list[RoundPlan | Skip] = []
    busy: set[str] = set()
    empty = PlanState()
    tick = checks.tick
    for view, checked in zip(views, checks.results, strict=True):
        if type(checked) is Skip:
            out.append(checked)
            continue
        decision = _decide(view, states.get(view.id, empty), now, rng, busy, tick, checked)  # type: ignore[arg-type]
        if isinstance(decision, RoundPlan):
            busy.add(decision.starter)
            busy.add(decision.responder)
        out.append(decision)
    return out


LOOKAHEAD_DAYS = 8


def next_round_at(view: ConversationView, state: PlanState, now: datetime) -> datetime | None:
    """The first instant from `now` at which the tick would start a round (what `mirage status` shows as the next
    planned round), None within 8 days. A running round counts as ending now, the earliest it can; other
    conversations' rounds as over; quota usage as known for this hour and unknown (nil) after it."""
    ended = [
        replace(r, status="done", finished_at=max(now, r.created_at)) if r.status in ("planned", "active") else r
        for r in state.rounds
    ]
    idle = PlanState(ended, state.total_rounds, frozenset(), state.used, state.limits)
    later = PlanState(idle.rounds, idle.total_rounds)  # after this hour, counters hold nothing we can know
    candidates = {now}
    last = max(idle.rounds, key=lambda r: r.finished_at or r.created_at, default=None)
    if last is not None:  # the pause after it, as each weekday's range would draw it
        for week_day in view.week.values():
            ready = (last.finished_at or last.created_at) + timedelta(
                minutes=pause_minutes(view, last, (week_day.pause_min, week_day.pause_max))
            )
            if ready > now:
                candidates.add(ready)
    local = local_datetime(now, view.timezone)
    for offset in range(LOOKAHEAD_DAYS):
        day = local.date() + timedelta(days=offset)
        for w in view.day(DOW_OF_WEEKDAY[day.weekday()]).windows:
            start = datetime.combine(day, w.start, tzinfo=local.tzinfo).astimezone(now.tzinfo)
            if start > now:
                candidates.add(start)
    for at in sorted(candidates):
        same_hour = at.replace(minute=0, second=0, microsecond=0) == now.replace(minute=0, second=0, microsecond=0)
        if isinstance(plan_conversation(view, idle if same_hour else later, at, random.Random(0)), RoundPlan):
            return at
    return None


# --- a running round -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundState:
    """A stored round as the state machine sees it; `done` counts the messages that reached the other bot."""

    id: str
    status: str
    script: tuple[str, ...]
    starter: str
    responder: str
    done: int
    turn: str | None
    deadline_at: datetime | None

    def speaker(self, step: int) -> str:
        return self.starter if step % 2 == 0 else self.responder

    def listener(self, step: int) -> str:
        return self.responder if step % 2 == 0 else self.starter


@dataclass(frozen=True)
class Send:
    step: int
    kind: str
    sender: str
    receiver: str


@dataclass(frozen=True)
class Finish:
    pass


@dataclass(frozen=True)
class Abort:
    reason: str


@dataclass(frozen=True)
class Wait:
    reason: str


def next_action(r: RoundState, now: datetime, quiet: bool) -> Send | Finish | Abort | Wait:
    """What the round does now: send its next step, finish, abort (deadline, quiet hours) or wait."""
    if r.status not in ("planned", "active"):
        return Wait(f"round is {r.status}")
    if r.done >= len(r.script):
        return Finish()
    if r.deadline_at is not None and now >= r.deadline_at:
        return Abort("deadline passed")
    if quiet:
        return Abort("quiet hours")
    step = r.done
    return Send(step, r.script[step], r.speaker(step), r.listener(step))


@dataclass(frozen=True)
class Accept:
    """An inbound bot message is the round's expected step: it was delivered, so the turn passes."""

    round_id: str
    step: int


@dataclass(frozen=True)
class Ignore:
    reason: str


def on_bot_message(
    rounds: Sequence[RoundState], sender: str, receiver: str, body: str | None, expected: Mapping[tuple[str, int], str]
) -> Accept | Ignore:
    """Anti-loop: a message from one of our bots to another is acted on only as the due step of an active round.

    `expected[(round id, step)]` is the text the round sent for that step (the outbox row).
    """
    mine = [r for r in rounds if r.status == "active" and {sender, receiver} == {r.starter, r.responder}]
    if not mine:
        return Ignore("no_active_round")
    for r in mine:
        if r.turn != sender or r.done >= len(r.script) or r.speaker(r.done) != sender:
            continue
        sent = expected.get((r.id, r.done))
        if sent is not None and normalize_text(sent) == normalize_text(body or ""):
            return Accept(r.id, r.done)
        return Ignore("not_the_round_message")
    return Ignore("not_its_turn")


def text_allowed(candidate: str, last_received: str | None, recent: Sequence[str], guard_no_echo: bool) -> bool:
    """No echo of the message just received, and no text the conversation already sent in the last 7 days."""
    n = normalize_text(candidate)
    if not n:
        return False
    if guard_no_echo and last_received is not None and n == normalize_text(last_received):
        return False
    return all(n != normalize_text(t) for t in recent)
