"""Plans for people and programs: text (terminal, colour on a TTY), markdown (PR comments), JSON (tools).

Sensitive fields never show a value (`(sensitive)`); the Plan holds none to begin with. Bidi controls and
zero-width characters in names are printed escaped (invisible.py), so a plan is safe to paste into a review.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from mirage.i18n import t
from mirage.reconcile.invisible import reveal
from mirage.reconcile.plan import Change, Item, Op, Plan, Summary, TenantPlan
from mirage.reconcile.resources import NUM2, SPEC_BY_NAME

MARKDOWN_LIMIT = 60_000
MARKER = "<!-- mirage-plan -->"
_LONG = 300  # characters of one value shown before it is cut

_COLOURS = {"+": "\x1b[32m", "~": "\x1b[33m", "-": "\x1b[31m", "drift": "\x1b[35m", "dim": "\x1b[2m", "bold": "\x1b[1m"}
_RESET = "\x1b[0m"


def _value(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= _LONG else text[: _LONG - 1] + "…"


def _label(item: Item, c: Change) -> str:
    return SPEC_BY_NAME[item.spec].by_name[c.field].label if c.field in SPEC_BY_NAME[item.spec].by_name else c.field


def _shown(item: Item, c: Change, side: str) -> str:
    if c.sensitive:
        return t("plan.known_after_apply") if side == "new" and c.unknown else t("plan.sensitive")
    ref = c.new_ref if side == "new" else c.old_ref
    if ref is not None:
        return ref
    v = c.new if side == "new" else c.old
    f = SPEC_BY_NAME[item.spec].by_name.get(c.field)
    if f is not None and f.type == NUM2 and v is not None:
        return str(v)  # kept as text for exact comparison; shown as the number it is
    return _value(v)


def _head(item: Item, blocked: bool) -> str:
    notes = []
    if item.renamed_from:
        notes.append(t("plan.renamed", old=item.renamed_from))
    if item.drift:
        notes.append(t("plan.drift"))
    if item.op is Op.DELETE and item.spec == "tenant":
        notes.append(t("plan.archived"))
    if blocked:
        notes.append(t("plan.blocked"))
    return f"{item.op.symbol} {item.address}" + "".join(f" ({n})" for n in notes)


def item_lines(item: Item, *, blocked: bool = False) -> Iterator[tuple[str, str]]:
    """(style, line) pairs for one item: its head, then one line per shown field."""
    yield (item.op.symbol if not item.drift else "drift"), reveal(_head(item, blocked))
    if item.op is Op.DELETE:
        return
    changes = [c for c in item.changes if item.op is Op.UPDATE or c.sensitive or c.new is not None]
    width = max((len(_label(item, c)) for c in changes), default=0)
    for c in changes:
        name = _label(item, c).ljust(width)
        if item.op is Op.CREATE:
            yield "", reveal(f"    {name} = {_shown(item, c, 'new')}")
        else:
            yield "", reveal(f"    {name}: {_shown(item, c, 'old')} → {_shown(item, c, 'new')}")


def _md_lines(item: Item, blocked: bool) -> list[str]:
    """Item lines for a ```diff block: a created row's fields start with `+` so GitHub colours them."""
    out = []
    for _, line in item_lines(item, blocked=blocked):
        out.append(f"{item.op.symbol}{line[1:]}" if item.op is Op.CREATE and line.startswith("    ") else line)
    return out


def _tenant_title(tp: TenantPlan) -> str:
    return t("plan.tenant_new" if not tp.exists else "plan.tenant", slug=tp.slug)


def summary_line(plan: Plan) -> str:
    s = plan.summary
    return t("plan.summary", add=s.add, change=s.change, destroy=s.destroy)


def compact_line(item: Item, *, blocked: bool = False) -> str:
    """One line for an item: its head, and for an update the names of the fields that change."""
    head = _head(item, blocked)
    if item.op is not Op.UPDATE:
        return reveal(head)
    return reveal(f"{head}: {', '.join(_label(item, c) for c in item.changes)}")


def render_text(plan: Plan, *, allow_delete: bool = False, color: bool = False, compact: bool = False) -> str:
    """Terraform-like text: per tenant `+` / `~` / `-` items with changed fields, then the summary line.

    `compact` prints one line per item (updates list the changed fields' names, not their values).
    """

    def paint(style: str, text: str) -> str:
        code = _COLOURS.get(style)
        return f"{code}{text}{_RESET}" if color and code else text

    out: list[str] = [paint("drift", f"{t('plan.warning')}: {w}") for w in plan.warnings]
    if plan.empty:
        out.append(t("plan.no_changes"))
        return reveal("\n".join(out) + "\n")
    blocked = {i.id for i in plan.blocked(allow_delete)}
    for tp in plan.tenants:
        if not tp.items:
            continue
        out.append("")
        out.append(paint("bold", _tenant_title(tp)))
        for item in tp.items:
            if compact:
                out.append(
                    paint(
                        item.op.symbol if not item.drift else "drift",
                        "  " + compact_line(item, blocked=item.id in blocked),
                    )
                )
                continue
            for style, line in item_lines(item, blocked=item.id in blocked):
                out.append(paint(style, "  " + line))
    out.append("")
    out.append(paint("bold", summary_line(plan)))
    if blocked:
        out.append(paint("-", t("plan.blocked_summary", n=len(blocked))))
    return reveal("\n".join(out).lstrip("\n") + "\n")


def render_json(plan: Plan) -> str:
    """The plan file format (docs/plan-format.md): only the changes, fingerprints, never a secret."""
    return plan.to_json()


def _fence(lines: list[str]) -> str:
    """A code fence longer than any run of backticks inside (a value may contain some)."""
    run = 0
    for line in lines:
        count = 0
        for ch in line:
            count = count + 1 if ch == "`" else 0
            run = max(run, count)
    return "`" * max(3, run + 1)


def render_markdown(plan: Plan, *, allow_delete: bool = False, limit: int = MARKDOWN_LIMIT) -> str:
    """A pull-request comment: summary, a table of counts, a collapsible diff per tenant, kept under `limit`."""
    blocked = {i.id for i in plan.blocked(allow_delete)}
    head = [MARKER, f"## {t('plan.md_title')}", ""]
    if plan.warnings:
        head += [*(f"> **{t('plan.warning')}:** {w}  " for w in plan.warnings), ""]
    if plan.empty:
        return reveal("\n".join([*head, t("plan.no_changes"), ""]))
    head += [f"**{summary_line(plan)}**", ""]
    if blocked:
        head += [f"> :no_entry: {t('plan.blocked_summary', n=len(blocked))}", ""]
    changed = [tp for tp in plan.tenants if tp.items]
    head += [f"| {t('plan.md_tenant')} | add | change | destroy |", "|---|---:|---:|---:|"]
    rows = [f"| `{tp.slug}` | {tp.summary.add} | {tp.summary.change} | {tp.summary.destroy} |" for tp in changed]
    kept, size = 0, 0
    while kept < len(rows) and size + len(rows[kept]) < limit // 4:  # thousands of tenants: the table is cut too
        size += len(rows[kept]) + 1
        kept += 1
    head += rows[:kept]
    if rest := changed[kept:]:
        s = Summary.of([i for tp in rest for i in tp.items])
        head.append(f"| … +{len(rest)} | {s.add} | {s.change} | {s.destroy} |")
    text = "\n".join(head) + "\n\n"
    reserve = 600  # room for the truncation notice and the closing tags
    hidden = 0
    for n, tp in enumerate(changed):
        s = tp.summary
        title = t("plan.summary", add=s.add, change=s.change, destroy=s.destroy)
        lines = [line for item in tp.items for line in _md_lines(item, item.id in blocked)]
        section = _section(tp, title, lines)
        if len(text) + len(section) <= limit - reserve:
            text += section
            continue
        # Cut inside this tenant: as many whole items as fit, then stop.
        shown: list[str] = []
        kept = 0
        size = len(text) + len(_section(tp, title, ["`" * 8]))  # the frame, with room for a longer fence
        for item in tp.items:
            item_text = _md_lines(item, item.id in blocked)
            size += sum(len(line) + 1 for line in item_text)
            if size > limit - reserve:
                break
            shown += item_text
            kept += 1
        if kept:
            text += _section(tp, title, shown)
        hidden += len(tp.items) - kept + sum(len(x.items) for x in changed[n + 1 :])
        break
    if hidden:
        text += "\n" + t("plan.md_truncated", n=hidden, limit=f"{limit:,}") + "\n"
    return reveal(text)


def _section(tp: TenantPlan, title: str, lines: list[str]) -> str:
    fence = _fence(lines)
    body = "\n".join(lines)
    return (
        f"### {_tenant_title(tp)}\n\n<details><summary>{title}</summary>\n\n"
        f"{fence}diff\n{body}\n{fence}\n\n</details>\n\n"
    )


RENDERERS: dict[str, Callable[..., str]] = {"text": render_text, "json": render_json, "markdown": render_markdown}
