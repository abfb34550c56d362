"""The simulation's report: per tenant, number and day counts, delay and typing percentiles against the
configuration, the compliance checks, and the transcript (ADR 0039). Rendered as text, JSON or markdown."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from mirage.engine import cadence
from mirage.engine.calendar import local_datetime
from mirage.engine.rounds import DOW_OF_WEEKDAY
from mirage.engine.view import ConversationView
from mirage.i18n import t
from mirage.simulation.checks import CHECKS, Check, OptoutRule, recognised, run_checks, runtime_rule

MARKER = "<!-- mirage-simulation -->"  # the CI comment is found and updated by it
MARKDOWN_FINDINGS = 10
MARKDOWN_ROWS = 60  # offending messages listed per check in a pull-request comment
TEXT_FINDINGS = 50


@dataclass
class Report:
    start: date
    days: int
    seed: int
    tenants: dict[str, dict[str, dict[str, Counter[str]]]]  # tenant -> number -> day -> counts
    delays: dict[str, dict[str, Any]]  # "tenant/conversation" -> configured and observed percentiles
    checks: dict[str, Check]
    transcript: list[dict[str, Any]]
    windows: list[dict[str, Any]] = field(default_factory=list)  # each configured window of each day: rounds run
    optouts: list[dict[str, Any]] = field(default_factory=list)  # people who opted out, when, to which number
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def violations(self) -> int:
        return sum(c.count for c in self.checks.values())

    @property
    def transcript_text(self) -> str:
        return "".join(json.dumps(m, ensure_ascii=False, sort_keys=True) + "\n" for m in self.transcript)

    @property
    def transcript_sha256(self) -> str:
        return hashlib.sha256(self.transcript_text.encode()).hexdigest()


def _pct(values: Sequence[int], q: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def build_report(
    views: Sequence[ConversationView],
    messages: Sequence[dict[str, Any]],
    rounds: Sequence[dict[str, Any]],
    refused: Sequence[dict[str, Any]],
    ignored: Sequence[dict[str, Any]],
    *,
    start: date,
    days: int,
    seed: int,
    opts_out: OptoutRule = runtime_rule,
) -> Report:
    """Everything the run shows, from the rows it left (pure: rows and views in); `opts_out` tells which of the
    people's messages meant an opt-out (the simulated people's rule)."""
    dates = [start + timedelta(days=i) for i in range(days)]
    zone = {v.tenant_slug: v.timezone for v in views}
    for m in messages:
        zone.setdefault(m["tenant"], m["timezone"])
    tenants: dict[str, dict[str, dict[str, Counter[str]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(Counter))
    )
    seen: set[tuple[str, str]] = set()
    transcript = []
    for m in messages:
        day = local_datetime(m["at"], zone[m["tenant"]]).date().isoformat()
        meta = m["meta"] or {}
        if m["direction"] == "out" and m["from_key"]:
            row = tenants[m["tenant"]][m["from_key"]][day]
            row["sent"] += 1
            if m["to_key"]:
                tenants[m["tenant"]][m["to_key"]][day]["received"] += 1
            peer = str(m["to_jid"] or m["to_key"])
            if (m["from_key"], peer) not in seen:
                seen.add((m["from_key"], peer))
                row["new_contacts"] += 1
        elif m["direction"] == "in" and m["to_key"]:
            tenants[m["tenant"]][m["to_key"]][day]["received"] += 1
        transcript.append(
            {
                "at": local_datetime(m["at"], zone[m["tenant"]]).isoformat(timespec="seconds"),
                "tenant": m["tenant"],
                "from": m["from_key"] or str(m["from_jid"] or "").split("@")[0],
                "to": m["to_key"] or str(m["to_jid"] or "").split("@")[0],
                "conversation": m["conversation"],
                "step": meta.get("step"),
                "kind": "person" if m["direction"] == "in" else meta.get("kind") or meta.get("app_origin"),
                "topic": meta.get("topic"),
                "text": m["body"],
            }
        )
    for r in rounds:
        day = r["window_date"].isoformat()
        for key in {r["number_a"], r["number_b"]} - {None}:
            tenants[r["tenant"]][key][day]["rounds"] += 1
    delays = _delays(views, messages)
    checks = run_checks(views, messages, rounds, refused, ignored, dates, opts_out)
    talks = [r for r in rounds if r["target_id"] is None]  # conversation rounds; the others are outreach's
    stats = {
        "rounds": len(talks),
        "rounds_done": sum(1 for r in talks if r["status"] == "done"),
        "rounds_aborted": Counter(str(r["abort_reason"]) for r in talks if r["status"] == "aborted"),
        "outreach_rounds": len(rounds) - len(talks),
        "sent": sum(1 for m in messages if m["direction"] == "out"),
        "replies": sum(1 for m in messages if m["direction"] == "in"),
        "to_people": sum(1 for m in messages if m["direction"] == "out" and m["to_number_id"] is None),
    }
    optouts = [
        {
            "at": row["at"],
            "tenant": row["tenant"],
            "person": row["from"],
            "number": row["to"],
            "text": row["text"],
            "recognised": recognised(m),
        }
        for row, m in zip(transcript, messages, strict=True)
        if m["direction"] == "in" and opts_out(str(m["body"] or ""))
    ]
    windows = _windows(views, rounds, dates)
    return Report(start, days, seed, tenants, delays, checks, transcript, windows, optouts, stats)


def _windows(
    views: Sequence[ConversationView], rounds: Sequence[dict[str, Any]], dates: Sequence[date]
) -> list[dict[str, Any]]:
    """Every window the configuration opens on a simulated day (conversations with a pair of bots), and how many
    rounds started in it."""
    ran = Counter((r["conversation_id"], r["window_date"], r["daypart"]) for r in rounds)
    out = []
    for v in sorted(views, key=lambda v: (v.tenant_slug, v.key)):
        if not v.pairs:
            continue
        for day in dates:
            spec = v.day(DOW_OF_WEEKDAY[day.weekday()])
            for w in spec.windows:
                out.append(
                    {
                        "conversation": f"{v.tenant_slug}/{v.key}",
                        "day": day.isoformat(),
                        "daypart": w.daypart,
                        "window": f"{w.start:%H:%M}-{w.end:%H:%M}",
                        "max_rounds": spec.max_rounds_per_window,
                        "rounds": ran[(v.id, day, w.daypart)],
                    }
                )
    return out


def _delays(views: Sequence[ConversationView], messages: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    think: dict[str, list[int]] = defaultdict(list)
    typing: dict[str, list[int]] = defaultdict(list)
    for m in messages:
        meta = m["meta"] or {}
        if m["direction"] == "out" and m["conversation_id"] and "think_ms" in meta:
            think[m["conversation_id"]].append(int(meta["think_ms"]))
            typing[m["conversation_id"]].append(int(meta.get("typing_ms", 0)))
    out = {}
    for v in sorted(views, key=lambda v: (v.tenant_slug, v.key)):
        th, ty = think.get(v.id, []), typing.get(v.id, [])
        out[f"{v.tenant_slug}/{v.key}"] = {
            "configured_delay_ms": [v.settings.min_delay_ms, v.settings.max_delay_ms],
            "configured_typing_ms": [cadence.TYPING_MIN_MS, cadence.TYPING_MAX_MS] if v.settings.humanize else [0, 0],
            "messages": len(th),
            "delay_ms": {"p50": _pct(th, 0.5), "p90": _pct(th, 0.9), "max": max(th, default=None)},
            "typing_ms": {"p50": _pct(ty, 0.5), "p90": _pct(ty, 0.9), "max": max(ty, default=None)},
            "within": all(v.settings.min_delay_ms <= x <= v.settings.max_delay_ms for x in th),
        }
    return out


# --- rendering ---------------------------------------------------------------------------------------------------


def as_json(report: Report) -> dict[str, Any]:
    return {
        "start": report.start.isoformat(),
        "days": report.days,
        "seed": report.seed,
        "ok": report.violations == 0,
        "violations": report.violations,
        "totals": {**report.stats, "rounds_aborted": dict(report.stats.get("rounds_aborted", {}))},
        "tenants": {
            tenant: {number: {day: dict(c) for day, c in sorted(d.items())} for number, d in sorted(nums.items())}
            for tenant, nums in sorted(report.tenants.items())
        },
        "delays": report.delays,
        "windows": report.windows,
        "optouts": report.optouts,
        "checks": {
            name: {
                "count": c.count,
                "findings": [
                    {"at": f.at.isoformat(), "tenant": f.tenant, "what": f.what, "why": f.why} for f in c.findings
                ],
            }
            for name, c in report.checks.items()
        },
        "transcript_sha256": report.transcript_sha256,
        "footer": t("simulate.footer"),
    }


def _day_totals(report: Report) -> dict[str, dict[str, Counter[str]]]:
    per: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for tenant, nums in report.tenants.items():
        for days in nums.values():
            for day, c in days.items():
                per[tenant][day].update(c)
    return per


def _fmt(v: Any) -> str:
    return "-" if v is None else str(v)


def as_text(report: Report) -> str:
    lines = [t("simulate.title", days=report.days, start=report.start.isoformat(), seed=report.seed), ""]
    for tenant, nums in sorted(report.tenants.items()):
        lines.append(f"{tenant}")
        lines.append(f"  {'number':<16} {'day':<10} {'sent':>5} {'recv':>5} {'rounds':>6} {'new':>4}")
        for number, days in sorted(nums.items()):
            for day, c in sorted(days.items()):
                lines.append(
                    f"  {number:<16} {day:<10} {c['sent']:>5} {c['received']:>5} {c['rounds']:>6} "
                    f"{c['new_contacts']:>4}"
                )
        lines.append("")
    lines.append(t("simulate.delays"))
    for key, d in report.delays.items():
        lo, hi = d["configured_delay_ms"]
        lines.append(
            f"  {key}: {d['messages']} msg, delay p50 {_fmt(d['delay_ms']['p50'])} p90 {_fmt(d['delay_ms']['p90'])} "
            f"max {_fmt(d['delay_ms']['max'])} ms (configured {lo}-{hi}); typing p50 {_fmt(d['typing_ms']['p50'])} "
            f"p90 {_fmt(d['typing_ms']['p90'])} ms"
        )
    lines += ["", t("simulate.checks")]
    for name in CHECKS:
        check = report.checks[name]
        lines.append(f"  {'ok ' if check.count == 0 else 'FAIL'} {t(f'simulate.check.{name}'):<44} {check.count}")
        for f in check.findings[:TEXT_FINDINGS]:
            lines.append(f"       {f.at:%Y-%m-%d %H:%M} {f.tenant}: {f.what} — {f.why}")
        if check.count > TEXT_FINDINGS:
            lines.append("       " + t("simulate.more", n=check.count - TEXT_FINDINGS))
    s = report.stats
    lines += [
        "",
        t("simulate.totals", rounds=s["rounds"], done=s["rounds_done"], sent=s["sent"], replies=s["replies"]),
        t("simulate.verdict_ok") if report.violations == 0 else t("simulate.verdict_fail", n=report.violations),
        f"transcript sha256 {report.transcript_sha256}",
        "",
        t("simulate.footer"),
    ]
    return "\n".join(lines) + "\n"


def as_markdown(report: Report) -> str:
    s = report.stats
    verdict = (
        "✅ " + t("simulate.verdict_ok")
        if report.violations == 0
        else "❌ " + t("simulate.verdict_fail", n=report.violations)
    )
    lines = [
        MARKER,
        f"### {t('simulate.title', days=report.days, start=report.start.isoformat(), seed=report.seed)}",
        "",
        f"**{verdict}** — "
        + t("simulate.totals", rounds=s["rounds"], done=s["rounds_done"], sent=s["sent"], replies=s["replies"]),
        "",
        f"| {t('simulate.check_header')} | # |",
        "| --- | ---: |",
    ]
    for name in CHECKS:
        c = report.checks[name]
        lines.append(f"| {'✅' if c.count == 0 else '❌'} {t(f'simulate.check.{name}')} | {c.count} |")
    offending = [(n, c) for n, c in report.checks.items() if c.count]
    for name, c in offending:
        lines += ["", f"<details><summary>{t(f'simulate.check.{name}')} ({c.count})</summary>", ""]
        for f in c.findings[:MARKDOWN_FINDINGS]:
            lines.append(f"- `{f.at:%Y-%m-%d %H:%M}` {f.tenant}: {f.what} — {f.why}")
        if c.count > MARKDOWN_FINDINGS:
            lines.append("- " + t("simulate.more", n=c.count - MARKDOWN_FINDINGS))
        lines += ["", "</details>"]
    lines += [
        "",
        f"| tenant | {t('simulate.day')} | sent | recv | rounds | new |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    rows = [
        f"| {tenant} | {day} | {n['sent']} | {n['received']} | {n['rounds']} | {n['new_contacts']} |"
        for tenant, per_day in sorted(_day_totals(report).items())
        for day, n in sorted(per_day.items())
    ]
    lines += rows[:MARKDOWN_ROWS]
    if len(rows) > MARKDOWN_ROWS:  # a fleet: the comment stays far under GitHub's 65,536 characters
        lines.append(f"| … | {t('simulate.more', n=len(rows) - MARKDOWN_ROWS)} | | | | |")
    lines += ["", f"| {t('simulate.conversation')} | msg | delay p50/p90 ms | {t('simulate.configured')} |"]
    lines.append("| --- | ---: | --- | --- |")
    for key, d in list(report.delays.items())[:MARKDOWN_ROWS]:
        lo, hi = d["configured_delay_ms"]
        lines.append(
            f"| {key} | {d['messages']} | {_fmt(d['delay_ms']['p50'])}/{_fmt(d['delay_ms']['p90'])} | {lo}-{hi} |"
        )
    lines += ["", f"<sub>{t('simulate.footer')} · transcript sha256 `{report.transcript_sha256[:16]}`</sub>"]
    return "\n".join(lines) + "\n"
