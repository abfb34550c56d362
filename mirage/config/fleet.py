"""The loaded fleet: every tenant's resolved configuration, plus where each value was written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mirage.config.sources import Location, TenantSources
from mirage.config.tenant import TenantConfig


@dataclass(frozen=True)
class Fleet:
    """All tenants under one root (`tenants.d/`), keyed by slug (the folder name)."""

    root: Path
    tenants: dict[str, TenantConfig]
    empty_dirs: list[str] = field(default_factory=list)  # tenant folders holding no files
    sources: Mapping[str, TenantSources] = field(default_factory=dict, repr=False)

    def locate(self, slug: str, *path: str | int, key: bool = False) -> tuple[str, int, int]:
        """(file, line, col) where a TenantConfig path was written, e.g. locate("acme", "numbers", "tio", "persona").

        Paths follow TenantConfig: "numbers"/"personas"/"outreach" + key, "conversations" + key (values that came
        from tenant `defaults:` point into tenant.yaml; a weekday's window, round cap or pause points at the key
        that won it, as expand_schedule decides: e.g. a conversation's `every_day` over a default `weekend`),
        "contacts" + E.164 number, anything else is in tenant.yaml. Unknown paths give the deepest existing
        node; line 0 = unknown.
        """
        src = self.sources.get(slug)
        if src is None:
            return str(self.root / slug), 0, 0
        loc: Location = src.locate(path, key)
        return loc.path, loc.line, loc.col
