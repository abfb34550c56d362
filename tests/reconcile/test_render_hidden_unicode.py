"""Plans are safe to paste into a pull request: bidi controls and zero-width characters are printed escaped."""

from __future__ import annotations

import itertools
import json
import unicodedata
from typing import Any

import pytest

from mirage.i18n import set_locale
from mirage.reconcile.diff import build_plan
from mirage.reconcile.invisible import reveal
from mirage.reconcile.plan import Plan
from mirage.reconcile.render import render_json, render_markdown, render_text
from mirage.reconcile.resources import DesiredState, DesiredTenant, Resource
from mirage.reconcile.rows import ActualState

# (name as written in YAML, how a plan shows it)
HIDDEN = [
    pytest.param("Tio \u202eoãJ", "Tio \\u202eoãJ", id="right-to-left-override"),
    pytest.param("\u2066Tia\u2069 Maria", "\\u2066Tia\\u2069 Maria", id="isolates"),
    pytest.param("Ro\u200bsa", "Ro\\u200bsa", id="zero-width-space"),
    pytest.param("Zé\u200d", "Zé\\u200d", id="zero-width-joiner-outside-emoji"),
    pytest.param("\ufeffBOM", "\\ufeffBOM", id="byte-order-mark"),
    pytest.param("Ana\u00adLu", "Ana\\u00adLu", id="soft-hyphen"),
    pytest.param("x\U000e0041y", "x\\U000e0041y", id="tag-character"),
]
EMOJI_FAMILY = "Família 👨\u200d👩\u200d👧"


@pytest.fixture(autouse=True)
def english() -> Any:
    set_locale("en")
    yield
    set_locale(None)


def _plan(name: str) -> Plan:
    counter = itertools.count()
    res = (
        Resource(
            "tenant",
            (),
            {"name": name, "plan": "free", "timezone": "UTC", "locale": "en", "prune": False, "archived": False},
        ),
        Resource(
            "contacts",
            ("+5511988887777",),
            {"wa_number": "+5511988887777", "display_name": name, "tags": [name], "notes": None},
        ),
    )
    desired = DesiredState({"acme": DesiredTenant("acme", res)}, warnings=(f"a warning about {name}",))
    return build_plan(desired, ActualState.empty(), new_id=lambda: f"id-{next(counter)}")


def _hidden(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) == "Cf"]


@pytest.mark.parametrize(("name", "shown"), HIDDEN)
@pytest.mark.parametrize(
    "render",
    [
        pytest.param(lambda p: render_text(p), id="text"),
        pytest.param(lambda p: render_text(p, compact=True), id="compact"),
        pytest.param(lambda p: render_text(p, color=True), id="colour"),
        pytest.param(lambda p: render_markdown(p), id="markdown"),
    ],
)
def test_hidden_characters_in_names_are_printed_escaped(render: Any, name: str, shown: str) -> None:
    out = render(_plan(name))
    assert _hidden(out) == []
    assert shown in out


@pytest.mark.parametrize(("name", "shown"), HIDDEN)
def test_the_json_plan_escapes_them_and_still_reads_back_the_same_plan(name: str, shown: str) -> None:
    plan = _plan(name)
    for out in (render_json(plan), plan.to_json()):
        assert _hidden(out) == []
        assert json.loads(out)["tenants"][0]["items"][0]["changes"][0]["new"] == name
        back = Plan.from_json(out)
        assert back.plan_hash == plan.plan_hash and back == plan


def test_an_emoji_sequence_joined_by_zero_width_joiners_stays_readable_in_text_and_markdown() -> None:
    plan = _plan(EMOJI_FAMILY)
    assert EMOJI_FAMILY in render_text(plan) and EMOJI_FAMILY in render_markdown(plan)
    assert _hidden(render_json(plan)) == []


def test_every_format_character_is_revealed_and_nothing_else() -> None:
    for code in range(0x110000):
        ch = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        unicode_15 = 0x13439 <= code <= 0x1343F  # format characters since Unicode 15 (this Python may be older)
        is_format = unicodedata.category(ch) == "Cf" or unicode_15
        assert (reveal("a" + ch + "b") != "a" + ch + "b") == is_format, f"U+{code:04X}"
