"""README.pt-BR.md says what README.md says: linked from its top, the same two commands, the same tour, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EN = (ROOT / "README.md").read_text(encoding="utf-8")
PT = (ROOT / "README.pt-BR.md").read_text(encoding="utf-8")


def _block_after(text: str, heading: str) -> list[str]:
    """The commands (comments dropped) of the first ```sh block after `heading`."""
    block = text.split(heading, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_links_the_portuguese_one_at_its_top_and_back() -> None:
    assert "(README.pt-BR.md)" in "\n".join(EN.splitlines()[:5])
    assert "(README.md)" in "\n".join(PT.splitlines()[:5])


@pytest.mark.parametrize(
    ("en_heading", "pt_heading"),
    [("## Two commands", "## Dois comandos"), ("## A short tour", "## Um tour rápido")],
    ids=["two-commands", "tour"],
)
def test_the_portuguese_readme_has_the_same_commands_in_the_same_order(en_heading: str, pt_heading: str) -> None:
    assert _block_after(PT, pt_heading) == _block_after(EN, en_heading)


def test_both_readmes_have_a_backups_section() -> None:
    assert "\n## Backups\n" in EN and "\n## Backups\n" in PT
