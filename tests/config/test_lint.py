# ruff: noqa: E501 - expected findings stay whole, one per line
"""Lint rules: each has a failing and a passing example; warnings exit 0, --strict makes them errors."""

from __future__ import annotations

import json
import textwrap
from datetime import date
from pathlib import Path

import pytest

from mirage.config import load_fleet
from mirage.config.lint import RULES, lint_tenant
from tests.config.helpers import BASE, run, write_tenant

T = textwrap.dedent(BASE["tenant.yaml"])
CONV = textwrap.dedent(BASE["conversations/chat.yaml"])
OUT = textwrap.dedent(BASE["outreach.yaml"])
BUSY = {"conversations/chat.yaml": CONV.replace("schedule:\n", "schedule:\n  max_rounds_per_window: 3\n")}
EIGHT_VIPS = {
    "contacts.yaml": "contacts:\n" + "".join(f'  - {{number: "+55118888800{i:02d}", tags: [vip]}}\n' for i in range(8))
}

FAILING = [
    pytest.param(
        "human-delay-floor",
        {"tenant.yaml": T.replace("min_delay_ms: 4000", "min_delay_ms: 1500")},
        "2026-03-01",
        [
            "tenants.d/acme/tenant.yaml:4:17: warning: min_delay_ms 1500 is under the human floor of 3000 ms [human-delay-floor]"
        ],
        id="human-delay-floor-tenant",
    ),
    pytest.param(
        "human-delay-floor",
        {"conversations/chat.yaml": CONV + "settings: {min_delay_ms: 800}\n"},
        "2026-03-01",
        [
            "tenants.d/acme/conversations/chat.yaml:11:26: warning: min_delay_ms 800 is under the human floor of 3000 ms [human-delay-floor]"
        ],
        id="human-delay-floor-conversation",
    ),
    pytest.param(
        "optout-keywords",
        {"outreach.yaml": OUT.replace("    targets:", "    optout_keywords: []\n    targets:")},
        "2026-03-01",
        [
            "tenants.d/acme/outreach.yaml:6:5: warning: active outreach policy without opt-out keywords: people must be able to say SAIR / PARAR / STOP [optout-keywords]"
        ],
        id="optout-keywords",
    ),
    pytest.param(
        "warmup-ramp",
        BUSY,
        "2026-01-06",
        [
            "tenants.d/acme/numbers.yaml:6:24: warning: up to 34 messages a day planned (conversations 24, outreach 10, daily_limit 200) but the warm-up ramp allows 20 on day 1 [warmup-ramp]",
            "tenants.d/acme/numbers.yaml:11:24: warning: up to 24 messages a day planned (conversations 24, outreach 0, daily_limit 200) but the warm-up ramp allows 20 on day 1 [warmup-ramp]",
        ],
        id="warmup-ramp",
    ),
    pytest.param(
        "new-contacts-per-day",
        EIGHT_VIPS,
        "2026-01-06",
        [
            "tenants.d/acme/outreach.yaml:4:18: warning: number 'tio' may reach up to 8 new contacts a day; the ramp allows 5 on day 1 [new-contacts-per-day]"
        ],
        id="new-contacts-per-day",
    ),
    pytest.param(
        "quiet-hours-short",
        {"tenant.yaml": T.replace('{start: "22:00", end: "07:00"}', '{start: "01:00", end: "05:00"}')},
        "2026-03-01",
        [
            "tenants.d/acme/tenant.yaml:6:16: warning: quiet hours 01:00-05:00 last 4 h 00 min; keep at least 6 h [quiet-hours-short]"
        ],
        id="quiet-hours-short",
    ),
    pytest.param(
        "window-in-quiet-hours",
        {"conversations/chat.yaml": CONV + '      evening: {start: "23:00", end: "23:45"}\n'},
        "2026-03-01",
        [
            "tenants.d/acme/conversations/chat.yaml:11:16: warning: evening window 23:00-23:45 lies inside quiet hours 22:00-07:00 and never runs (mon, tue, wed, thu, fri) [window-in-quiet-hours]"
        ],
        id="window-in-quiet-hours-conversation",
    ),
    pytest.param(
        "window-in-quiet-hours",
        {
            "tenant.yaml": T.replace('{start: "22:00", end: "07:00"}', '{start: "17:30", end: "09:00"}'),
            "outreach.yaml": OUT.replace("    targets:", "    dayparts: [afternoon, evening]\n    targets:"),
        },
        "2026-03-01",
        [
            "tenants.d/acme/outreach.yaml:6:27: warning: outreach daypart evening lies inside quiet hours 17:30-09:00 and never runs [window-in-quiet-hours]"
        ],
        id="window-in-quiet-hours-outreach",
    ),
]

PASSING = [
    pytest.param(
        "human-delay-floor",
        {"tenant.yaml": T.replace("min_delay_ms: 4000", "min_delay_ms: 3000")},
        "2026-03-01",
        id="human-delay-floor",
    ),
    pytest.param("optout-keywords", {}, "2026-03-01", id="optout-keywords"),
    pytest.param("warmup-ramp", BUSY, "2026-01-26", id="warmup-ramp-three-weeks-later"),
    pytest.param("new-contacts-per-day", EIGHT_VIPS, "2026-01-20", id="new-contacts-two-weeks-later"),
    pytest.param(
        "quiet-hours-short",
        {"tenant.yaml": T.replace('{start: "22:00", end: "07:00"}', '{start: "23:00", end: "05:00"}')},
        "2026-03-01",
        id="quiet-hours-six-hours",
    ),
    pytest.param(
        "window-in-quiet-hours",
        {"conversations/chat.yaml": CONV + '      evening: {start: "21:00", end: "22:30"}\n'},
        "2026-03-01",
        id="window-partly-before-quiet-hours",
    ),
]


@pytest.mark.parametrize(("rule", "files", "today", "expected"), FAILING)
def test_failing_example_warns_and_strict_exits_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rule: str,
    files: dict[str, str | None],
    today: str,
    expected: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    write_tenant(Path("tenants.d"), files)
    result = run("lint", "tenants.d", "--today", today)
    assert result.exit_code == 0
    *findings, summary = result.stdout.splitlines()
    assert findings == expected
    assert summary == f"0 error(s), {len(expected)} warning(s) in 1 tenant(s)"
    strict = run("lint", "tenants.d", "--today", today, "--strict", "--format", "json")
    assert strict.exit_code == 1
    doc = json.loads(strict.stdout)
    assert {(p["severity"], p["rule"]) for p in doc["problems"]} == {("error", rule)}


@pytest.mark.parametrize(("rule", "files", "today"), PASSING)
def test_passing_example_is_clean_even_under_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rule: str, files: dict[str, str | None], today: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write_tenant(Path("tenants.d"), files)
    result = run("lint", "tenants.d", "--today", today, "--strict")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["0 error(s), 0 warning(s) in 1 tenant(s)"]


def test_every_rule_has_a_failing_and_a_passing_example() -> None:
    ids = {r.id for r in RULES}
    assert len(ids) == len(RULES)
    assert {p.values[0] for p in FAILING} == ids
    assert {p.values[0] for p in PASSING} == ids


def test_rules_are_pure_functions_of_the_tenant_and_the_date(tmp_path: Path) -> None:
    tenant = load_fleet(write_tenant(tmp_path, BUSY)).tenants["acme"]
    early, late = date(2026, 1, 6), date(2026, 2, 6)
    assert lint_tenant(tenant, early) == lint_tenant(tenant, early)
    assert {i.rule for i in lint_tenant(tenant, early)} == {"warmup-ramp"}
    assert lint_tenant(tenant, late) == []
    assert {i.severity for i in lint_tenant(tenant, early, strict=True)} == {"error"}


def test_invalid_yaml_fails_lint_like_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_tenant(Path("tenants.d"), {"numbers.yaml": "numbers: [\n"})
    result = run("lint", "tenants.d")
    assert result.exit_code == 1
    assert result.stdout.startswith("tenants.d/acme/numbers.yaml:2:1: YAML syntax error")
