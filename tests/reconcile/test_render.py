"""Renderers: markdown stays under its budget, colour only when asked, both languages, no secret ever."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mirage.i18n import set_locale
from mirage.reconcile.diff import build_plan
from mirage.reconcile.render import MARKDOWN_LIMIT, MARKER, render_markdown, render_text
from mirage.reconcile.resources import DesiredState, DesiredTenant, Resource
from mirage.reconcile.state import ActualState
from tests.reconcile.helpers import edit, mirage

Conn = psycopg.Connection[Any]


def _big_plan(tenants: int, contacts: int) -> Any:
    counter = itertools.count()
    desired = {}
    for t in range(tenants):
        slug = f"tenant-{t:03d}"
        res = [
            Resource(
                "tenant",
                (),
                {"name": slug, "plan": "free", "timezone": "UTC", "locale": "en", "prune": False, "archived": False},
            )
        ]
        for c in range(contacts):
            e164 = f"+55119{t:03d}{c:05d}"
            res.append(
                Resource(
                    "contacts",
                    (e164,),
                    {
                        "wa_number": e164,
                        "display_name": f"Contact {c} " + "x" * 40,
                        "tags": ["vip", "bairro"],
                        "notes": "`code` ``` fence",
                    },
                )
            )
        desired[slug] = DesiredTenant(slug, tuple(res))
    return build_plan(DesiredState(desired), ActualState.empty(), new_id=lambda: f"id-{next(counter)}")


@pytest.fixture(autouse=True)
def english() -> Any:
    set_locale("en")
    yield
    set_locale(None)


@pytest.mark.parametrize(("tenants", "contacts"), [(1, 3000), (40, 100), (300, 2), (3000, 0)])
def test_markdown_stays_under_the_budget_with_counts_and_a_truncation_notice(tenants: int, contacts: int) -> None:
    plan = _big_plan(tenants, contacts)
    md = render_markdown(plan)
    assert len(md) < MARKDOWN_LIMIT
    assert md.startswith(MARKER)
    assert f"**Plan: {tenants * (contacts + 1)} to add, 0 to change, 0 to destroy.**" in md
    hidden = int(re.search(r"… (\d+) more change\(s\) not shown", md)[1])  # type: ignore[index]
    shown = len(re.findall(r"^[+~-] \S", md, flags=re.M))
    assert shown + hidden == plan.summary.total
    assert md.count("<details>") == md.count("</details>")
    if tenants > 1000:  # the counts table is cut too, its last row adds up the rest
        assert re.search(r"^\| … \+\d+ \| \d+ \| 0 \| 0 \|$", md, flags=re.M)
    for fence in re.findall(r"^(`{3,})diff$", md, flags=re.M):
        assert len(fence) == (4 if contacts else 3)  # longer than the ``` inside the values


def test_small_markdown_plan_is_complete_with_a_section_per_tenant() -> None:
    plan = _big_plan(2, 3)
    md = render_markdown(plan)
    assert "not shown" not in md
    assert md.count("### Tenant") == 2 and md.count("<details>") == 2
    assert "| `tenant-000` | 4 | 0 | 0 |" in md


def test_text_plan_has_colour_only_when_asked() -> None:
    plan = _big_plan(1, 1)
    assert "\x1b[" not in render_text(plan)
    coloured = render_text(plan, color=True)
    assert "\x1b[32m  + contacts.+55119000" in coloured


def test_cli_plan_is_plain_when_not_a_terminal_and_coloured_with_color(env: Conn, fleet: Path) -> None:
    assert "\x1b[" not in mirage("plan", fleet).stdout
    assert "\x1b[32m" in mirage("plan", fleet, "--color").stdout


def test_plan_speaks_portuguese(env: Conn, fleet: Path) -> None:
    out = mirage("--lang", "pt-BR", "plan", fleet).stdout
    assert "Plano: 29 a adicionar, 0 a alterar, 0 a destruir." in out
    assert "(sensível)" in out
    mirage("--lang", "pt-BR", "apply", fleet, "--yes")
    assert "Nenhuma alteração." in mirage("--lang", "pt-BR", "plan", fleet).stdout


def test_every_plan_string_exists_in_both_languages() -> None:
    from mirage.i18n import catalog

    en = {k for k in catalog("en") if k.startswith("plan.")}
    pt = {k for k in catalog("pt-BR") if k.startswith("plan.")}
    assert en == pt and len(en) > 20


def test_compact_plan_has_one_line_per_change_and_names_changed_fields(env: Conn, fleet: Path) -> None:
    full = mirage("plan", fleet).stdout
    compact = mirage("plan", fleet, "--compact").stdout
    heads = [line for line in full.splitlines() if re.match(r"^  [+~-] ", line)]
    assert [line for line in compact.splitlines() if line.startswith("  ")] == heads
    assert "Plan: 29 to add, 0 to change, 0 to destroy." in compact
    mirage("apply", fleet, "--yes")
    edit(fleet / "padaria" / "numbers.yaml", "Zeca reserva", "Zeca do caixa")
    changed = mirage("plan", fleet, "--compact").stdout
    assert "  ~ numbers.zeca: label\n" in changed
    assert "Zeca do caixa" not in changed  # values stay out of the compact form


def test_apply_can_show_its_plan_compact(env: Conn, fleet: Path) -> None:
    out = mirage("apply", fleet, "--yes", "--compact").stdout
    assert "  + numbers.zeca\n" in out and "    label" not in out
