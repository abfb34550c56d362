"""Risk rules for a valid tenant: each is a pure function of (tenant, today) returning findings with a rule id.

Findings are warnings; `mirage lint --strict` makes them errors. The thresholds are Mirage's conservative
policy (docs/adr/0018-warmup-ramp.md): WhatsApp publishes no numbers for unofficial clients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, time

from mirage.config.conversations import Conversation
from mirage.config.messages import Issue
from mirage.config.tenant import TenantConfig
from mirage.config.types import DAYPARTS
from mirage.engine.calendar import DAYPART_SPANS, inside, span_minutes
from mirage.engine.ramp import age_in_days, daily_message_cap, new_contacts_cap
from mirage.engine.view import effective_settings

HUMAN_DELAY_FLOOR_MS = 3000  # people take seconds to read and type; faster replies look automated
MIN_QUIET_HOURS = 6 * 60  # minutes


@dataclass(frozen=True)
class Rule:
    """A lint rule: stable id (for CI and docs), what it checks, and the pure check itself."""

    id: str
    summary: str
    check: Callable[[TenantConfig, date], Iterator[Issue]]


def _finding(rule: str, path: tuple[str | int, ...], message: str, key: bool = False) -> Issue:
    return Issue(path, message, key=key, severity="warning", rule=rule)


def _hm(t: time | None) -> str:
    return t.strftime("%H:%M") if t else "?"


def human_delay_floor(t: TenantConfig, today: date) -> Iterator[Issue]:
    """Delays under the human floor make replies arrive faster than a person types."""
    rule, floor = "human-delay-floor", HUMAN_DELAY_FLOOR_MS
    if t.settings.min_delay_ms < floor:
        yield _finding(
            rule,
            ("settings", "min_delay_ms"),
            f"min_delay_ms {t.settings.min_delay_ms} is under the human floor of {floor} ms",
        )
    tenant = t.settings.model_dump()
    for key, c in t.conversations.items():
        # What the runtime will use (mirage.engine.view.effective_settings); reported where it was set.
        v = effective_settings(tenant, c.settings.model_dump()).min_delay_ms
        if c.active and c.settings.min_delay_ms is not None and v < floor:
            yield _finding(
                rule,
                ("conversations", key, "settings", "min_delay_ms"),
                f"min_delay_ms {v} is under the human floor of {floor} ms",
            )


def optout_keywords(t: TenantConfig, today: date) -> Iterator[Issue]:
    """An active outreach policy must let people say stop."""
    for key, p in t.outreach.items():
        if p.active and not p.optout_keywords:
            yield _finding(
                "optout-keywords",
                ("outreach", key, "optout_keywords"),
                "active outreach policy without opt-out keywords: people must be able to say SAIR / PARAR / STOP",
                key=True,
            )


def conversation_messages_per_day(c: Conversation) -> int:
    """Upper bound of messages one participating number sends a day in `c` (busiest weekday)."""
    if not c.active or c.schedule is None:
        return 0
    busiest = 0
    for day in c.schedule.days.values():
        windows = sum(1 for p in DAYPARTS if day.window(p).enabled)
        busiest = max(busiest, windows * day.max_rounds_per_window * c.exchanges.max)
    return busiest


def planned_daily_messages(t: TenantConfig, number: str) -> tuple[int, int, int]:
    """(conversations, outreach, total capped by daily_limit) messages a day planned for a bot number."""
    conv = sum(
        conversation_messages_per_day(c)
        for c in t.conversations.values()
        if any(p.number == number for p in c.participants)
    )
    outreach = sum(p.daily_limit for p in t.outreach.values() if p.active and p.number == number)
    return conv, outreach, min(t.settings.daily_limit, conv + outreach)


def warmup_ramp(t: TenantConfig, today: date) -> Iterator[Issue]:
    """The planned daily volume of each number stays under the warm-up ramp for its age."""
    for key, n in t.numbers.items():
        if not n.active:
            continue
        conv, outreach, total = planned_daily_messages(t, key)
        cap = daily_message_cap(n.warmup_started_on, today)
        if total > cap:
            age = age_in_days(n.warmup_started_on, today)
            yield _finding(
                "warmup-ramp",
                ("numbers", key, "warmup_started_on"),
                f"up to {total} messages a day "
                f"planned (conversations {conv}, outreach {outreach}, daily_limit "
                f"{t.settings.daily_limit}) but the warm-up ramp allows {cap} on day {age}",
                key=n.warmup_started_on is None,
            )


def new_contacts_per_day(t: TenantConfig, today: date) -> Iterator[Issue]:
    """Reaching many new people a day is the pattern that gets numbers banned."""
    for key, n in t.numbers.items():
        policies = [(k, p) for k, p in t.outreach.items() if p.active and p.number == key]
        if not policies:
            continue
        new = sum(min(p.daily_limit, len(p.targets)) for _, p in policies)
        cap = new_contacts_cap(n.warmup_started_on, today)
        if new > cap:
            yield _finding(
                "new-contacts-per-day",
                ("outreach", policies[0][0], "daily_limit"),
                f"number '{key}' may "
                f"reach up to {new} new contacts a day; the ramp allows {cap} on day "
                f"{age_in_days(n.warmup_started_on, today)}",
            )


def quiet_hours_short(t: TenantConfig, today: date) -> Iterator[Issue]:
    """People sleep: quiet hours shorter than 6 h leave messages arriving at night."""
    q = t.settings.quiet_hours
    length = span_minutes(q.start, q.end)
    if length < MIN_QUIET_HOURS:
        yield _finding(
            "quiet-hours-short",
            ("settings", "quiet_hours"),
            f"quiet hours {_hm(q.start)}-{_hm(q.end)} "
            f"last {length // 60} h {length % 60:02d} min; keep at least {MIN_QUIET_HOURS // 60} h",
        )


def window_in_quiet_hours(t: TenantConfig, today: date) -> Iterator[Issue]:
    """A window entirely inside quiet hours never runs: almost certainly a mistake in the times."""
    q = (t.settings.quiet_hours.start, t.settings.quiet_hours.end)
    rule = "window-in-quiet-hours"
    for key, c in t.conversations.items():
        if c.schedule is None:
            continue
        hits: dict[tuple[str, time | None, time | None], list[str]] = {}
        for dow, day in c.schedule.days.items():
            for part in DAYPARTS:
                w = day.window(part)
                if w.enabled and w.start and w.end and inside((w.start, w.end), q):
                    hits.setdefault((part, w.start, w.end), []).append(dow)
        for (name, start, end), days in hits.items():
            yield _finding(
                rule,
                ("conversations", key, "schedule", "days", days[0], name),
                f"{name} window "
                f"{_hm(start)}-{_hm(end)} lies inside quiet hours {_hm(q[0])}-{_hm(q[1])} and never runs "
                f"({', '.join(days)})",
            )
    for key, p in t.outreach.items():
        for i, daypart in enumerate(p.dayparts):
            if p.active and inside(DAYPART_SPANS[daypart], q):
                yield _finding(
                    rule,
                    ("outreach", key, "dayparts", i),
                    f"outreach daypart {daypart} lies inside quiet hours {_hm(q[0])}-{_hm(q[1])} and never runs",
                )


RULES: tuple[Rule, ...] = (
    Rule("human-delay-floor", f"min_delay_ms under {HUMAN_DELAY_FLOOR_MS} ms", human_delay_floor),
    Rule("optout-keywords", "active outreach policy without opt-out keywords", optout_keywords),
    Rule("warmup-ramp", "planned daily messages above the warm-up ramp for the number's age", warmup_ramp),
    Rule("new-contacts-per-day", "more new contacts a day than the warm-up ramp allows", new_contacts_per_day),
    Rule("quiet-hours-short", "quiet hours shorter than 6 h", quiet_hours_short),
    Rule("window-in-quiet-hours", "a window that lies entirely inside quiet hours", window_in_quiet_hours),
)


def lint_tenant(t: TenantConfig, today: date, strict: bool = False) -> list[Issue]:
    """Every finding of every rule for one tenant; `strict` turns them into errors."""
    found = [i for rule in RULES for i in rule.check(t, today)]
    if strict:
        found = [Issue(i.path, i.message, i.key, "error", i.rule) for i in found]
    return found
