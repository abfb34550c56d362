"""AA contrast and a visible keyboard focus, computed from the design tokens themselves (page.css), in both themes;
and every contrast figure written next to a token (page.css, docs/ui.md) is the one WCAG's formula gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CSS = (ROOT / "mirage" / "web" / "pages" / "static" / "page.css").read_text(encoding="utf-8")
UI_DOC = (ROOT / "docs" / "ui.md").read_text(encoding="utf-8")
HEX = r"#[0-9a-fA-F]{6}"


def _tokens(block: str) -> dict[str, str]:
    return dict(re.findall(rf"--([a-z0-9-]+):\s*({HEX})", block))


DARK = _tokens(CSS.split('[data-theme="light"]', 1)[0])
LIGHT = {**DARK, **_tokens(CSS.split('[data-theme="light"]', 1)[1].split("}", 1)[0])}
THEMES = {"dark": DARK, "light": LIGHT}


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ratio(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


# text colours and the backgrounds they sit on (docs/ui.md#design-tokens): cards and table rows are --surface,
# table heads and inputs --surface-2, the page and its footer --bg
ON_SURFACE = ["text", "muted", "accent", "accent-2", "ok", "warn", "bad", "idle"]
EVERYWHERE = ["text", "muted", "accent"]


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("fg", ON_SURFACE)
def test_every_text_colour_meets_aa_on_the_cards(theme: str, fg: str) -> None:
    tokens = THEMES[theme]
    assert ratio(tokens[fg], tokens["surface"]) >= 4.5


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("fg", EVERYWHERE)
@pytest.mark.parametrize("bg", ["bg", "surface-2"])
def test_text_links_and_labels_meet_aa_on_the_page_and_table_heads(theme: str, fg: str, bg: str) -> None:
    tokens = THEMES[theme]
    assert ratio(tokens[fg], tokens[bg]) >= 4.5


@pytest.mark.parametrize("theme", THEMES)
def test_keyboard_focus_is_visible_in_a_colour_that_stands_out(theme: str) -> None:
    assert re.search(r":focus-visible\s*\{[^}]*outline:\s*\d+px solid var\(--focus\)", CSS)
    tokens = THEMES[theme]
    assert min(ratio(tokens["focus"], tokens[bg]) for bg in ("bg", "surface", "surface-2")) >= 3.0  # WCAG 1.4.11


@pytest.mark.parametrize("theme", THEMES)
def test_the_contrast_figures_written_in_page_css_are_true(theme: str) -> None:
    block = CSS.split('[data-theme="light"]', 1)[0 if theme == "dark" else 1].split("}", 1)[0]
    claims = re.findall(rf"--([a-z0-9-]+):\s*{HEX};\s*/\*[^*]*?(\d+\.\d):1", block)
    assert claims
    tokens = THEMES[theme]
    assert {name: f"{ratio(tokens[name], tokens['surface']):.1f}" for name, _ in claims} == dict(claims)


def test_the_contrast_figures_in_docs_ui_are_true() -> None:
    rows = re.findall(
        rf"^\| `--([a-z0-9-]+)` \| `({HEX})`[^|]*?\((\d+\.\d):1[^|]*\| `({HEX})`[^|]*?\((\d+\.\d):1", UI_DOC, re.M
    )
    assert rows
    for name, dark, dark_claim, light, light_claim in rows:
        assert (dark, light) == (DARK[name], LIGHT[name])
        assert f"{ratio(dark, DARK['surface']):.1f}" == dark_claim, name
        assert f"{ratio(light, LIGHT['surface']):.1f}" == light_claim, name
