"""Compliance checks over a simulation's transcript (pure: facts and conversation views in, findings out).

Each check counts offending messages (or rounds) and keeps them, so the report can list them. The rules are
recomputed here from the configuration with the pure core's arithmetic, independently of the runtime's own
guards: a send the runtime should have refused shows up, and so does a configuration that keeps the runtime
refusing (a window inside quiet hours, more rounds than a daily limit allows) (ADR 0039).

Opt-outs are judged by what the person *meant* (`opts_out`: the simulated people's own rule, which may know
phrases a tenant's `optout_keywords` do not), not by what the runtime recognised: a policy whose keywords miss
how its people say stop shows up as messages after an opt-out (ADR 0054).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from mirage.engine.calendar import contains, local_datetime, overlaps
from mirage.engine.optout import detect
from mirage.engine.quotas import daily_limit
from mirage.engine.ramp import daily_message_cap
from mirage.engine.rounds import DOW_OF_WEEKDAY, NO_REPEAT_DAYS, in_quiet_hours
from mirage.engine.view import ConversationView

OptoutRule = Callable[[str], bool]  # a person's message text -> they meant to opt out


def runtime_rule(text: str) -> bool:
    """The runtime's built-in rule (no policy keywords): what a person means when nothing else is known."""
    return detect(text).verdict == "optout"


CHECKS = ("quiet_hours", "hourly_limit", "daily_limit", "warmup", "after_optout", "out_of_turn", "repeated", "windows")


@dataclass
class Finding:
    at: datetime
    tenant: str
    what: str  # who and which message or round
    why: str


@dataclass
class Check:
    name: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.findings)

    def add(self, at: datetime, tenant: str, what: str, why: str) -> None:
        self.findings.append(Finding(at, tenant, what, why))


def _hm(t: time) -> str:
    return t.strftime("%H:%M")


def _who(m: dict[str, Any]) -> str:
    sender = m.get("from_key") or (m.get("from_jid") or "?").split("@")[0]
    receiver = m.get("to_key") or (m.get("to_jid") or "?").split("@")[0]
    return f"{sender} -> {receiver}: {str(m.get('body') or '')[:60]!r}"


def run_checks(
    views: Sequence[ConversationView],
    messages: Sequence[dict[str, Any]],
    rounds: Sequence[dict[str, Any]],
    refused: Sequence[dict[str, Any]],
    ignored: Sequence[dict[str, Any]],
    days: Iterable[date],
    opts_out: OptoutRule = runtime_rule,
) -> dict[str, Check]:
    """Every check over the run; `days` are the simulated dates (tenant-local); `opts_out` tells which of the
    people's messages meant an opt-out."""
    checks = {name: Check(name) for name in CHECKS}
    by_id = {v.id: v for v in views}
    by_tenant: dict[str, ConversationView] = {}
    for v in views:
        by_tenant.setdefault(v.tenant_slug, v)
    days = list(days)
    out = [m for m in messages if m["direction"] == "out"]
    _quiet(checks["quiet_hours"], views, out, refused, by_tenant, days)
    sent = _quotas(checks, out, refused, by_id, by_tenant)
    _held_back(checks, views, rounds, sent, days)
    _optout(checks["after_optout"], messages, opts_out)
    _turns(checks["out_of_turn"], out, ignored)
    _repeats(checks["repeated"], out)
    _windows(checks["windows"], rounds, by_id, by_tenant)
    return checks


def _quiet(
    check: Check,
    views: Sequence[ConversationView],
    out: Sequence[dict[str, Any]],
    refused: Sequence[dict[str, Any]],
    by_tenant: dict[str, ConversationView],
    days: list[date],
) -> None:
    for m in out:
        v = by_tenant.get(m["tenant"])
        if v is not None and in_quiet_hours(v.quiet, m["at"], v.timezone):
            local = local_datetime(m["at"], v.timezone)
            check.add(m["at"], m["tenant"], _who(m), f"sent at {local:%a %H:%M}, quiet hours {_quiet_text(v)}")
    for r in refused:
        if "quiet hours" in str(r["error"] or ""):
            check.add(r["at"], r["tenant"], _who(r), f"the runtime refused it: {r['error']}")
    for v in views:  # a configured window the quiet hours swallow: the runtime never starts a round in it
        for day in days:
            for w in v.day(DOW_OF_WEEKDAY[day.weekday()]).windows:
                if overlaps((w.start, w.end), v.quiet):
                    at = datetime.combine(day, w.start, tzinfo=UTC)
                    what = f"conversation {v.key}: {day:%a} {w.daypart} {_hm(w.start)}-{_hm(w.end)}"
                    check.add(at, v.tenant_slug, what, f"window inside quiet hours {_quiet_text(v)}")


def _quiet_text(v: ConversationView) -> str:
    return f"{_hm(v.quiet[0])}-{_hm(v.quiet[1])} ({v.timezone})"


def _quotas(
    checks: dict[str, Check],
    out: Sequence[dict[str, Any]],
    refused: Sequence[dict[str, Any]],
    by_id: dict[str, ConversationView],
    by_tenant: dict[str, ConversationView],
) -> Counter[tuple[str, date]]:
    hourly: Counter[tuple[str, datetime]] = Counter()
    daily: Counter[tuple[str, date]] = Counter()
    for m in out:
        v = by_id.get(m["conversation_id"] or "") or by_tenant.get(m["tenant"])
        number = m["from_number_id"]
        if v is None or number is None:
            continue
        hour = m["at"].astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        day = local_datetime(m["at"], v.timezone).date()
        n = v.numbers.get(number)
        warmup = n.warmup_started_on if n else None
        if hourly[(number, hour)] >= v.settings.hourly_burst_limit:
            checks["hourly_limit"].add(
                m["at"],
                m["tenant"],
                _who(m),
                f"message {hourly[(number, hour)] + 1} in the hour {hour:%H}:00 UTC "
                f"(limit {v.settings.hourly_burst_limit})",
            )
        cap = daily_limit(v.settings.daily_limit, warmup, day)
        if daily[(number, day)] >= cap:
            ramp = daily_message_cap(warmup, day)
            name = "warmup" if ramp < v.settings.daily_limit else "daily_limit"
            checks[name].add(
                m["at"], m["tenant"], _who(m), f"message {daily[(number, day)] + 1} on {day} (limit {cap})"
            )
        hourly[(number, hour)] += 1
        daily[(number, day)] += 1
    for r in refused:
        error = str(r["error"] or "")
        which = "hourly_limit" if "hourly_burst_limit" in error else "daily_limit" if "daily_limit" in error else None
        if which:
            checks[which].add(r["at"], r["tenant"], _who(r), f"the runtime refused it: {error}")
    return daily


def _held_back(
    checks: dict[str, Check],
    views: Sequence[ConversationView],
    rounds: Sequence[dict[str, Any]],
    sent: Counter[tuple[str, date]],
    days: list[date],
) -> None:
    """Windows that ran fewer rounds than configured while a number had no daily quota left for a whole round:
    the configuration asks for more than the daily limit (or the warm-up ramp) lets a number send."""
    ran = Counter((r["conversation_id"], r["window_date"], r["daypart"]) for r in rounds)
    for v in views:
        for day in days:
            spec = v.day(DOW_OF_WEEKDAY[day.weekday()])
            for w in spec.windows:
                if ran[(v.id, day, w.daypart)] >= spec.max_rounds_per_window or overlaps((w.start, w.end), v.quiet):
                    continue
                for n in v.numbers.values():
                    cap = daily_limit(v.settings.daily_limit, n.warmup_started_on, day)
                    if cap - sent[(n.id, day)] < v.exchanges_max:
                        ramp = daily_message_cap(n.warmup_started_on, day)
                        name = "warmup" if ramp < v.settings.daily_limit else "daily_limit"
                        at = datetime.combine(day, w.start, tzinfo=UTC)
                        what = f"conversation {v.key}: {day:%a} {w.daypart}, {ran[(v.id, day, w.daypart)]} of "
                        what += f"{spec.max_rounds_per_window} round(s)"
                        checks[name].add(at, v.tenant_slug, what, f"{n.key} sent {sent[(n.id, day)]} of {cap} that day")
                        break


def recognised(m: dict[str, Any]) -> bool:
    """Whether the runtime acted on this person's message as an opt-out (or paused the contact to ask a person)."""
    return (m.get("meta") or {}).get("optout") in ("optout", "ambiguous")


def _optout(check: Check, messages: Sequence[dict[str, Any]], opts_out: OptoutRule) -> None:
    opted: dict[tuple[str, str], dict[str, Any]] = {}
    for m in messages:  # time order
        if m["direction"] == "in":
            jid = str(m["from_jid"] or "")
            if opts_out(str(m["body"] or "")):
                opted.setdefault((m["tenant"], jid.split("@")[0]), m)
            continue
        who = str(m["to_jid"] or "").split("@")[0]
        said = opted.get((m["tenant"], who))
        if said is not None and m["at"] > said["at"]:
            why = f"{who} opted out at {said['at']:%Y-%m-%d %H:%M} UTC ({str(said['body'] or '')[:40]!r})"
            if not recognised(said):
                why += "; the runtime did not recognise it: add the phrase to the policy's optout_keywords"
            check.add(m["at"], m["tenant"], _who(m), why)


def _turns(check: Check, out: Sequence[dict[str, Any]], ignored: Sequence[dict[str, Any]]) -> None:
    by_round: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in out:
        if m["round_id"] and m["to_number_id"]:  # bot-to-bot rounds take turns; outreach rounds are one bot's
            by_round[m["round_id"]].append(m)
    for steps in by_round.values():
        steps.sort(key=lambda m: int((m["meta"] or {}).get("step", 0)))
        for prev, cur in itertools.pairwise(steps):
            if cur["from_number_id"] == prev["from_number_id"] or cur["at"] < prev["at"]:
                check.add(cur["at"], cur["tenant"], _who(cur), "sent out of turn in its round")
    for m in ignored:
        reason = str((m["meta"] or {}).get("ignored_reason", ""))
        if "turn" in reason:
            check.add(m["at"], m["tenant"], _who(m), f"the receiving bot ignored it: {reason}")


def _repeats(check: Check, out: Sequence[dict[str, Any]]) -> None:
    seen: dict[tuple[str, str], datetime] = {}
    for m in out:
        scope = m["conversation_id"] or f"{m['from_number_id']}>{m['to_jid']}"
        key = (scope, str(m["body"] or "").strip().casefold())
        first = seen.get(key)
        if first is not None and m["at"] - first < timedelta(days=NO_REPEAT_DAYS):
            check.add(m["at"], m["tenant"], _who(m), f"same text as at {first:%Y-%m-%d %H:%M} UTC")
        else:
            seen[key] = m["at"]


def _windows(
    check: Check,
    rounds: Sequence[dict[str, Any]],
    by_id: dict[str, ConversationView],
    by_tenant: dict[str, ConversationView],
) -> None:
    for r in rounds:
        v = by_id.get(r["conversation_id"] or "")
        if v is None:
            continue
        local = local_datetime(r["created_at"], v.timezone)
        windows = v.day(DOW_OF_WEEKDAY[local.weekday()]).windows
        if not any(w.daypart == r["daypart"] and contains(w.start, w.end, local.time()) for w in windows):
            what = f"round {r['conversation']} #{r['seq']} ({r['number_a']} & {r['number_b']})"
            check.add(
                r["created_at"], r["tenant"], what, f"started {local:%a %H:%M}, outside its {r['daypart']} window"
            )
