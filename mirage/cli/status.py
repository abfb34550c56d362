"""`mirage status [TENANT]`: what the runtime is doing now, as tables for people or JSON for scripts.

The report is built by mirage.jobs.status (tests call the same function); this module only renders it. A
feature with its own section registers a builder there (`add_section`) and a renderer here (`RENDERERS`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import click

from mirage.cli.base import cli
from mirage.i18n import t

Renderer = Callable[[dict[str, Any]], list[str]]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Left-aligned columns two spaces apart; None shows as '-'."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return lines


def _when(iso: str | None, timezone: str) -> str | None:
    """An instant in the tenant's time zone, short: `mon 14:00` (None stays None)."""
    if iso is None:
        return None
    from mirage.engine.calendar import local_datetime

    local = local_datetime(datetime.fromisoformat(iso), timezone)
    return f"{local:%a %d %H:%M}".lower()


def _numbers(tenant: dict[str, Any]) -> list[str]:
    rows = [
        (
            n["key"],
            n["wa_number"],
            n["state"] + (f" ({n['state_reason']})" if n["state_reason"] else ""),
            t("status.paused") if n["paused"] else ("" if n["active"] else t("status.inactive")),
            n["sent_today"],
            n["received_today"],
            f"{n['hour_used']}/{n['hour_limit']}",
            f"{n['day_used']}/{n['day_limit']}",
            n["headroom"],
        )
        for n in tenant["numbers"]
    ]
    return table(
        [
            t(f"status.col.{c}")
            for c in ("number", "phone", "state", "health", "sent", "received", "hour", "day", "headroom")
        ],
        rows,
    )


def _rounds(tenant: dict[str, Any]) -> list[str]:
    if not tenant["rounds"]:
        return [t("status.no_rounds")]
    rows = [
        (
            r["conversation"],
            r["status"],
            f"{r['daypart']} #{r['seq']}" if r["daypart"] else None,
            f"{r['step']}/{r['steps']}",
            f"{r['starter']} -> {r['responder']}",
            r["turn"],
            r["topic"],
            _when(r["deadline_at"], tenant["timezone"]),
        )
        for r in tenant["rounds"]
    ]
    cols = ("conversation", "round", "window", "step", "pair", "turn", "topic", "deadline")
    return table([t(f"status.col.{c}") for c in cols], rows)


def _conversations(tenant: dict[str, Any]) -> list[str]:
    if not tenant["conversations"]:
        return [t("status.no_conversations")]
    rows = [
        (c["conversation"], _when(c["next_round_at"], tenant["timezone"]), c["note"]) for c in tenant["conversations"]
    ]
    return table([t(f"status.col.{c}") for c in ("conversation", "next_round", "note")], rows)


def _paused(tenant: dict[str, Any]) -> list[str]:
    if not tenant["paused"]:
        return [t("status.none_paused")]
    rows = [(p["key"], _when(p["since"], tenant["timezone"]), p["reason"]) for p in tenant["paused"]]
    lines = table([t(f"status.col.{c}") for c in ("number", "since", "reason")], rows)
    return [*lines, t("status.resume_hint", tenant=tenant["tenant"])]


def _outreach(tenant: dict[str, Any]) -> list[str]:
    """Per policy: targets by state, today's new contacts against the number's cap, budgets, replies, opt-outs."""
    if not tenant["outreach"]:
        return [t("status.no_policies")]
    rows = [
        (
            p["policy"] + ("" if p["runs"] else f" ({t('status.waiting') if p['active'] else t('status.inactive')})"),
            p["number"],
            " ".join(f"{k}={v}" for k, v in p["targets"].items() if v),
            f"{p['new_today']} ({p['number_new_today']}/{p['new_cap']})",
            f"{p['hour_used']}/{p['hourly_limit']}",
            f"{p['day_used']}/{p['daily_limit']}",
            p["replies"],
            p["optouts"],
        )
        for p in tenant["outreach"]
    ]
    cols = ("policy", "number", "targets", "new_today", "hour", "day", "replies", "optouts")
    return table([t(f"status.col.{c}") for c in cols], rows)


# section -> renderer, in the order printed; a feature adding a section adds its renderer here
RENDERERS: dict[str, Renderer] = {
    "numbers": _numbers,
    "rounds": _rounds,
    "conversations": _conversations,
    "paused": _paused,
    "outreach": _outreach,
}


def render_text(report: dict[str, Any]) -> str:
    """The report as people read it: a heading per tenant, then one titled table per section present."""
    out: list[str] = []
    if not report["tenants"]:
        return t("status.no_tenants")
    for tenant in report["tenants"]:
        out.append(t("status.tenant", tenant=tenant["tenant"], timezone=tenant["timezone"], today=tenant["today"]))
        for name, render in RENDERERS.items():
            if tenant.get(name) is None:
                continue
            out.append("")
            out.append(f"  {t(f'status.section.{name}')}")
            out += [f"    {line}" for line in render(tenant)]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


@cli.command()
@click.argument("tenant", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Tables for people, or one JSON document for scripts.",
)
@click.option(
    "--outreach",
    is_flag=True,
    help="Add outreach: per policy, targets by state, today's new contacts (the number's against its warm-up "
    "cap), messages this hour and today against the policy's limits, replies and opt-outs.",
)
def status(tenant: str | None, fmt: str, outreach: bool) -> None:
    """Show what the runtime is doing for TENANT (a slug; default: every tenant).

    Numbers with their connection state, today's messages sent and received and quota used / left (tenant-local
    day, clock hour), the active rounds, the next round each conversation would start, and paused numbers with
    their reason (`mirage numbers resume TENANT/NUMBER` resumes one). Counts come from Postgres; times use the
    runtime clock (MIRAGE_CLOCK).
    """
    from mirage.jobs.runtime import clock, db, tx
    from mirage.jobs.status import status_report

    sections: list[str] = []
    if outreach:
        import mirage.jobs.outreach  # noqa: F401  (registers the `outreach` section)

        sections.append("outreach")
    with db() as conn, tx(conn) as c:
        report = status_report(c, tenant, clock().now(), sections)
    if fmt == "json":
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        click.echo(render_text(report), nl=False)
