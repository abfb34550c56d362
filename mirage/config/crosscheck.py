"""Checks across a tenant's files that one model cannot make alone: references, duplicates, ranges, windows.

Pure: takes the validated parts (a Draft) and returns Issues whose paths are TenantConfig paths; the loader
turns them into file:line:col. A part that failed validation is None and the checks that need it are skipped,
so one typo does not cascade into a page of "unknown number" errors.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import time

from mirage.config.contacts import Contact
from mirage.config.conversations import ConversationSpec
from mirage.config.messages import Issue
from mirage.config.numbers import Number
from mirage.config.outreach import OutreachPolicySpec
from mirage.config.personas import Persona
from mirage.config.schedule import ScheduleSpec, WeekSchedule, WindowSpec
from mirage.config.tenant import TenantFile
from mirage.config.types import DAYPARTS, excerpt
from mirage.engine.calendar import minute_of_day, overlaps
from mirage.engine.text import normalize_text

Loc = tuple[str | int, ...]


@dataclass
class Draft:
    """A tenant's validated parts before resolution; None marks a file that failed (its checks are skipped)."""

    slug: str
    tenant: TenantFile | None = None
    numbers: dict[str, Number] | None = None
    personas: dict[str, Persona] | None = None
    conversations: dict[str, ConversationSpec] = field(default_factory=dict)
    weeks: dict[str, WeekSchedule] = field(default_factory=dict)  # resolved (over tenant defaults), by conversation
    conversations_failed: bool = False
    contacts: list[Contact] | None = None
    outreach: dict[str, OutreachPolicySpec] | None = None


def _hm(t: time | None) -> str:
    return t.strftime("%H:%M") if t else "?"


def unknown(kind: str, value: str, known: Iterable[str], where: str) -> str:
    """'unknown persona 'tia' (did you mean 'tio'?)' or with the list of known names."""
    names = sorted(known)
    hint = difflib.get_close_matches(value, names, n=1)
    if hint:
        return f"unknown {kind} {excerpt(value)} (did you mean '{hint[0]}'?)"
    if names:
        more = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
        return f"unknown {kind} {excerpt(value)} ({where} defines: {more})"
    return f"unknown {kind} {excerpt(value)} ({where} defines none)"


def check(d: Draft) -> list[Issue]:
    """Every cross-file problem of the tenant."""
    out: list[Issue] = []
    defaults_ok = True
    if d.tenant is not None:
        out += tenant_checks(d.tenant)
        if d.tenant.defaults.schedule is not None:
            found, defaults_ok = schedule_spec_checks(("defaults", "schedule"), d.tenant.defaults.schedule)
            out += found
    if d.numbers is not None:
        out += number_checks(d.numbers, d.personas)
    if d.contacts is not None:
        out += contact_checks(d.contacts, d.numbers or {})
    for key, conv in d.conversations.items():
        out += conversation_checks(d, key, conv, defaults_ok)
    if d.outreach is not None:
        out += outreach_checks(d, d.outreach)
    out += previous_key_checks(d)
    return out


def tenant_checks(t: TenantFile) -> Iterator[Issue]:
    s = t.settings
    if s.min_delay_ms > s.max_delay_ms:
        yield Issue(
            ("settings", "max_delay_ms"),
            f"max_delay_ms ({s.max_delay_ms}) is less than min_delay_ms ({s.min_delay_ms})",
        )
    q = s.quiet_hours
    if minute_of_day(q.start) == minute_of_day(q.end):
        yield Issue(
            ("settings", "quiet_hours", "end"), "quiet hours start and end are equal: set a span such as 22:00-07:00"
        )
    seen: dict[str, int] = {}
    for i, m in enumerate(t.members):
        if m.email in seen:
            yield Issue(("members", i, "email"), f"duplicate member '{m.email}' (also members[{seen[m.email]}])")
        seen.setdefault(m.email, i)
    viewers: set[str] = set()
    for i, v in enumerate(t.viewers):
        if v in seen:
            yield Issue(("viewers", i), f"'{v}' is already a member; list each person once")
        elif v in viewers:
            yield Issue(("viewers", i), f"duplicate viewer '{v}'")
        viewers.add(v)


def number_checks(numbers: Mapping[str, Number], personas: Mapping[str, Persona] | None) -> Iterator[Issue]:
    owners: dict[str, str] = {}
    for key, n in numbers.items():
        if n.persona is not None and personas is not None and n.persona not in personas:
            yield Issue(("numbers", key, "persona"), unknown("persona", n.persona, personas, "personas.yaml"))
        if n.number in owners:
            yield Issue(("numbers", key, "number"), f"{n.number} is already number '{owners[n.number]}'")
        owners.setdefault(n.number, key)


def contact_checks(contacts: list[Contact], numbers: Mapping[str, Number]) -> Iterator[Issue]:
    bots = {n.number: k for k, n in numbers.items()}
    first: dict[str, int] = {}
    for i, c in enumerate(contacts):
        if c.number in first:
            yield Issue(("contacts", i, "number"), f"duplicate contact {c.number} (each number may appear once)")
            continue
        first[c.number] = i
        if c.number in bots:
            yield Issue(("contacts", i, "number"), f"{c.number} is the tenant's bot number '{bots[c.number]}'")
    claimed: dict[str, str] = {}
    for i, c in enumerate(contacts):
        for j, old in enumerate(c.previous_numbers):
            if old in first and first[old] != i:
                yield Issue(
                    ("contacts", i, "previous_numbers", j), f"previous number {old} is another contact's current number"
                )
            elif claimed.get(old, c.number) != c.number:  # two contacts cannot both be the renamed row
                yield Issue(
                    ("contacts", i, "previous_numbers", j), f"previous number {old} is also claimed by {claimed[old]}"
                )
            claimed.setdefault(old, c.number)


def _contact_set(d: Draft) -> set[str] | None:
    return None if d.contacts is None else {c.number for c in d.contacts}


def _active_policy_numbers(d: Draft) -> set[str] | None:
    return None if d.outreach is None else {p.number for p in d.outreach.values() if p.active}


def conversation_checks(d: Draft, key: str, c: ConversationSpec, defaults_ok: bool = True) -> Iterator[Issue]:
    """`defaults_ok`: the tenant's defaults.schedule has sound windows (else its overlaps are not judged)."""
    base: Loc = ("conversations", key)
    yield from participant_checks(d, base, c)
    if c.exchanges.min > c.exchanges.max:
        yield Issue(
            (*base, "exchanges", "max"), f"exchanges max ({c.exchanges.max}) is less than min ({c.exchanges.min})"
        )
    yield from delay_checks(d, base, c)
    for tk, topic in c.topics.items():
        if topic.active_from and topic.active_to and topic.active_to < topic.active_from:
            yield Issue(
                (*base, "topics", tk, "active_to"),
                f"active_to ({topic.active_to}) is before active_from ({topic.active_from})",
            )
    windows_ok = defaults_ok
    if c.schedule is not None:
        found, own_ok = schedule_spec_checks((*base, "schedule"), c.schedule)
        yield from found
        windows_ok = windows_ok and own_ok
    week = d.weeks.get(key)
    if week is not None and windows_ok:
        yield from overlap_checks((*base, "schedule"), week)


def participant_checks(d: Draft, base: Loc, c: ConversationSpec) -> Iterator[Issue]:
    contacts = _contact_set(d)
    members: dict[str, int] = {}
    for i, p in enumerate(c.participants):
        if p.ref in members:
            yield Issue((*base, "participants", i), f"duplicate participant '{p.ref}'")
            continue
        members[p.ref] = i
        if p.number is not None and d.numbers is not None and p.number not in d.numbers:
            yield Issue((*base, "participants", i, "number"), unknown("number", p.number, d.numbers, "numbers.yaml"))
        if p.contact is not None and contacts is not None and p.contact not in contacts:
            yield Issue((*base, "participants", i, "contact"), f"unknown contact {p.contact} (not in contacts)")
    if c.active and len(c.participants) < 2:
        yield Issue((*base, "participants"), "an active conversation needs at least two participants", key=True)
    if c.mode == "pair" and not c.pairings and len(c.participants) > 2:
        yield Issue((*base, "mode"), "mode pair with more than two participants needs `pairings`")
    seen: set[tuple[str, str]] = set()
    for i, pr in enumerate(c.pairings):
        for side in ("a", "b"):
            ref = getattr(pr, side)
            if ref not in members:
                yield Issue(
                    (*base, "pairings", i, side),
                    f"pairing side {side} '{ref}' is not a participant of this conversation",
                )
        if pr.a == pr.b:
            yield Issue((*base, "pairings", i, "b"), "a pairing needs two different sides")
        pair = (pr.a, pr.b)
        if pair in seen or pair[::-1] in seen:
            yield Issue((*base, "pairings", i), f"duplicate pairing {pr.a} <-> {pr.b}")
        seen.add(pair)
    yield from bot_human_checks(d, base, c)


def bot_human_checks(d: Draft, base: Loc, c: ConversationSpec) -> Iterator[Issue]:
    """Bot<->human is off by default: each bot facing a human needs an active outreach policy on its number."""
    enabled = _active_policy_numbers(d)
    if enabled is None:
        return
    why = "bot<->human is off by default"
    for i, pr in enumerate(c.pairings):
        if pr.b_is_contact and pr.a not in enabled:
            yield Issue((*base, "pairings", i, "b"), f"number '{pr.a}' has no active outreach policy: {why}")
    if c.pairings:
        return
    bots = [p.number for p in c.participants if p.number is not None]
    missing = [b for b in bots if b not in enabled]
    for i, p in enumerate(c.participants):
        if p.contact is not None and missing:
            names = ", ".join(f"'{m}'" for m in missing)
            yield Issue(
                (*base, "participants", i, "contact"),
                f"a human here needs an active outreach policy on {names}: {why}",
            )


def delay_checks(d: Draft, base: Loc, c: ConversationSpec) -> Iterator[Issue]:
    s = c.settings
    tenant = d.tenant.settings if d.tenant is not None else None
    lo = s.min_delay_ms if s.min_delay_ms is not None else (tenant.min_delay_ms if tenant else None)
    hi = s.max_delay_ms if s.max_delay_ms is not None else (tenant.max_delay_ms if tenant else None)
    if lo is not None and hi is not None and lo > hi and (s.min_delay_ms is not None or s.max_delay_ms is not None):
        which = "max_delay_ms" if s.max_delay_ms is not None else "min_delay_ms"
        lo_from = "" if s.min_delay_ms is not None else ", the tenant's"
        hi_from = "" if s.max_delay_ms is not None else ", the tenant's"
        yield Issue(
            (*base, "settings", which), f"max_delay_ms ({hi}{hi_from}) is less than min_delay_ms ({lo}{lo_from})"
        )


def _window_issue(loc: Loc, w: WindowSpec | None) -> Issue | None:
    if w is None or w.start is None or w.end is None:
        return None
    if minute_of_day(w.end) <= minute_of_day(w.start):
        return Issue(
            (*loc, "end"),
            f"window ends at {_hm(w.end)}, not after it starts at {_hm(w.start)} (only quiet hours may cross midnight)",
        )
    return None


def schedule_spec_checks(sched: Loc, spec: ScheduleSpec) -> tuple[list[Issue], bool]:
    """Problems of one schedule as written (pauses, window order) and whether all its windows are sound."""
    out: list[Issue] = []
    pr = spec.pause_between_rounds
    if pr.min > pr.max:
        out.append(Issue((*sched, "pause_between_rounds", "max"), f"pause max ({pr.max}) is less than min ({pr.min})"))
    windows_ok = True
    for day, ds in spec.days.items():
        if ds.pause_between_rounds and ds.pause_between_rounds.min > ds.pause_between_rounds.max:
            p = ds.pause_between_rounds
            out.append(
                Issue(
                    (*sched, "days", day, "pause_between_rounds", "max"),
                    f"pause max ({p.max}) is less than min ({p.min})",
                )
            )
        for part in DAYPARTS:
            issue = _window_issue((*sched, "days", day, part), getattr(ds, part))
            if issue:
                windows_ok = False
                out.append(issue)
    return out, windows_ok


def overlap_checks(sched: Loc, week: WeekSchedule) -> Iterator[Issue]:
    """Overlapping dayparts, judged on the resolved week (a weekday may combine windows of several sources)."""
    overlapping: dict[tuple[str, str, tuple[time | None, ...]], list[str]] = {}
    for dow, resolved in week.days.items():
        open_parts = [(p, resolved.window(p)) for p in DAYPARTS if resolved.window(p).enabled]
        for i, (pa, wa) in enumerate(open_parts):
            for pb, wb in open_parts[i + 1 :]:
                if wa.start and wa.end and wb.start and wb.end and overlaps((wa.start, wa.end), (wb.start, wb.end)):
                    overlapping.setdefault((pa, pb, (wa.start, wa.end, wb.start, wb.end)), []).append(dow)
    for (first, second, (s1, e1, s2, e2)), days in overlapping.items():
        yield Issue(
            (*sched, "days", days[0], second),
            f"{second} window {_hm(s2)}-{_hm(e2)} overlaps the {first} window {_hm(s1)}-{_hm(e1)} on {', '.join(days)}",
        )


def outreach_checks(d: Draft, policies: Mapping[str, OutreachPolicySpec]) -> Iterator[Issue]:
    contacts = _contact_set(d)
    tags = {t for c in d.contacts or [] for t in c.tags}
    for key, p in policies.items():
        base: Loc = ("outreach", key)
        if d.numbers is not None and p.number not in d.numbers:
            yield Issue((*base, "number"), unknown("number", p.number, d.numbers, "numbers.yaml"))
        if p.persona is not None and d.personas is not None and p.persona not in d.personas:
            yield Issue((*base, "persona"), unknown("persona", p.persona, d.personas, "personas.yaml"))
        if p.hourly_limit > p.daily_limit:
            yield Issue(
                (*base, "hourly_limit"), f"hourly_limit ({p.hourly_limit}) is more than daily_limit ({p.daily_limit})"
            )
        for name in ("dayparts", "allow_days"):
            values: list[str] = list(getattr(p, name))
            for i, v in enumerate(values):
                if v in values[:i]:
                    yield Issue((*base, name, i), f"'{v}' is listed twice")
        yield from keyword_checks(base, p.optout_keywords)
        for i, t in enumerate(p.targets):
            if t.contact is not None and contacts is not None and t.contact not in contacts:
                yield Issue((*base, "targets", i, "contact"), f"unknown contact {t.contact} (not in contacts)")
            if t.tag is not None and d.contacts is not None and t.tag not in tags:
                yield Issue(
                    (*base, "targets", i, "tag"), unknown("tag", t.tag, tags, "no contact" if not tags else "contacts")
                )


def keyword_checks(base: Loc, keywords: list[str]) -> Iterator[Issue]:
    """Opt-out keywords match without case or accents: two that normalise alike are a mistake."""
    first: dict[str, str] = {}
    for i, k in enumerate(keywords):
        n = normalize_text(k)
        if not n:
            yield Issue((*base, "optout_keywords", i), f"opt-out keyword {excerpt(k)} has no letters or digits")
        elif n in first:
            yield Issue(
                (*base, "optout_keywords", i),
                f"opt-out keyword {excerpt(k)} repeats {excerpt(first[n])} (case and accents are ignored)",
            )
        else:
            first[n] = k


def _renames(kind: str, items: Mapping[str, object], base: Loc) -> Iterator[Issue]:
    claimed: dict[str, str] = {}
    for key, item in items.items():
        for i, old in enumerate(getattr(item, "previous_keys", [])):
            if old in items:
                yield Issue(
                    (*base, key, "previous_keys", i), f"previous key '{old}' is the current key of another {kind}"
                )
            elif old in claimed:
                yield Issue(
                    (*base, key, "previous_keys", i), f"previous key '{old}' is also claimed by '{claimed[old]}'"
                )
            claimed.setdefault(old, key)


def previous_key_checks(d: Draft) -> Iterator[Issue]:
    yield from _renames("number", d.numbers or {}, ("numbers",))
    yield from _renames("persona", d.personas or {}, ("personas",))
    yield from _renames("conversation", d.conversations, ("conversations",))
    yield from _renames("policy", d.outreach or {}, ("outreach",))
    for key, c in d.conversations.items():
        yield from _renames("topic", c.topics, ("conversations", key, "topics"))
