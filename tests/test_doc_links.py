"""Every relative link in README.md, README.pt-BR.md and docs/ resolves: the file (or folder) exists, and a `#anchor`
names a heading of the target page (GitHub's slugs) or an explicit `<a id>`. Links inside code blocks are not links.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "README.pt-BR.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(\s*([^)\s]+)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
EXPLICIT = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def _prose(text: str) -> str:
    """The page without fenced code blocks and inline code spans (their brackets are not links)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "``", line))
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        found.update(EXPLICIT.findall(line))
        m = HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(page: Path) -> list[str]:
    text = _prose(page.read_text(encoding="utf-8"))
    return LINK.findall(text) + IMAGE.findall(text) + REFERENCE.findall(text)


CASES = [(page, target) for page in PAGES for target in links(page) if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def test_the_walk_finds_the_pages_and_their_links() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "README.pt-BR.md", "docs/operations.md", "docs/credentials/nginx-hostinger.md"} <= names
    assert len(CASES) > 100


@pytest.mark.parametrize(("page", "target"), CASES, ids=[f"{p.relative_to(ROOT).as_posix()}->{t}" for p, t in CASES])
def test_every_relative_link_resolves(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path).resolve() if path else page
    assert resolved.exists(), f"{page.relative_to(ROOT)}: {target}: no such file"
    assert resolved.is_relative_to(ROOT), f"{page.relative_to(ROOT)}: {target}: points outside the repository"
    if anchor:
        assert resolved.suffix == ".md", f"{page.relative_to(ROOT)}: {target}: anchor on a non-markdown file"
        assert anchor in anchors(resolved), (
            f"{page.relative_to(ROOT)}: {target}: no heading #{anchor} in {resolved.relative_to(ROOT)}"
        )


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("The demo (`mirage demo`)", "the-demo-mirage-demo"),
        ("2. Firewall / Firewall", "2-firewall--firewall"),
        ("Seção: configuração é fácil!", "seção-configuração-é-fácil"),
        ("[Access](x.md) and more", "access-and-more"),
    ],
)
def test_slugs_follow_github(heading: str, expected: str) -> None:
    assert slug(heading) == expected
