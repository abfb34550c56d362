"""Where a tenant's values live: model paths (as in TenantConfig) -> file:line:col in its YAML or CSV."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from yaml.nodes import ScalarNode

from mirage.config.contacts import CsvRow
from mirage.config.schedule import covering_keys
from mirage.config.types import DAYPARTS
from mirage.config.yamlsource import Source

Path_ = tuple[str | int, ...]

# File kinds and their names inside a tenant folder.
TENANT, NUMBERS, PERSONAS, CONTACTS, OUTREACH = "tenant", "numbers", "personas", "contacts", "outreach"
CONVERSATIONS_DIR = "conversations"
_SCHEDULE_WIDE = ("max_rounds_per_window", "pause_between_rounds")  # a day's own value, else the schedule's


@dataclass(frozen=True)
class Location:
    """A resolved position: display path, 1-based line and column (0 when unknown)."""

    path: str
    line: int
    col: int


@dataclass
class TenantSources:
    """Every file of one tenant plus the indexes that turn model paths into file positions."""

    folder: str
    files: dict[str, Source] = field(default_factory=dict)  # "tenant" | "numbers" | ... | "conversations/<key>"
    csv_rows: list[CsvRow] | None = None  # contacts.csv rows, when contacts come from CSV
    contact_index: dict[str, int] = field(default_factory=dict)  # E.164 -> index in the contacts list
    target_specs: dict[str, list[tuple[str | None, str | None]]] = field(default_factory=dict)  # policy -> targets
    contact_tags: dict[str, list[str]] = field(default_factory=dict)  # E.164 -> tags

    def release(self) -> None:
        for s in self.files.values():
            s.release()

    def in_file(self, kind: str, path: Path_ = (), key: bool = False) -> Location:
        """Position of `path` inside one file (the deepest existing node along it)."""
        src = self.files.get(kind)
        if src is None:
            return Location(self.folder, 0, 0)
        line, col, _ = src.find(path, key)
        return Location(src.display, line, col)

    def in_conversation(self, conv: str, path: Path_, key: bool = False) -> Location:
        """Position in conversations/<conv>.yaml, or in tenant.yaml `defaults:` when the value came from there."""
        candidates = [path]
        if len(path) >= 3 and path[0] == "schedule" and path[1] == "days" and isinstance(path[2], str):
            found = self.schedule_day(conv, path[2], path[3:], key)
            if found is not None:
                return found
            candidates = [("schedule", "days", k, *path[3:]) for k in covering_keys(path[2])]
        # Mappings merge key by key, so the file with the deepest match along the path wrote the value.
        best: tuple[int, int, Location] | None = None
        for rank, cand in enumerate(candidates):
            src = self.files.get(f"{CONVERSATIONS_DIR}/{conv}")
            if src is not None:
                line, col, depth = src.find(cand, key)
                best = _better(best, (depth, -rank, Location(src.display, line, col)))
            tenant = self.files.get(TENANT)
            if tenant is not None:
                line, col, depth = tenant.find(("defaults", *cand), key)
                if depth > 1:
                    best = _better(best, (depth - 1, -rank, Location(tenant.display, line, col)))
        return best[2] if best else Location(self.folder, 0, 0)

    def schedule_day(self, conv: str, day: str, rest: Path_, key: bool = False) -> Location | None:
        """Where ("schedule", "days", day, *rest) of a conversation was set, in the order expand_schedule applies.

        The conversation's schedule before the tenant's `defaults.schedule`; inside each, the named day, its
        group, every_day, then (for max_rounds_per_window / pause_between_rounds) the schedule-wide value.
        None when no file sets it.
        """
        field = rest[0] if rest else None
        for src, prefix in (
            (self.files.get(f"{CONVERSATIONS_DIR}/{conv}"), ("schedule",)),
            (self.files.get(TENANT), ("defaults", "schedule")),
        ):
            if src is None:
                continue
            for k in covering_keys(day):
                node = src.node((*prefix, "days", k))
                if node is None:
                    continue
                off_day = isinstance(node, ScalarNode) and field in DAYPARTS  # `sat: off` sets every daypart
                if field is None or off_day or src.node((*prefix, "days", k, field)) is not None:
                    line, col, _ = src.find((*prefix, "days", k, *rest), key)
                    return Location(src.display, line, col)
            if field in _SCHEDULE_WIDE and src.node((*prefix, field)) is not None:
                line, col, _ = src.find((*prefix, *rest), key)
                return Location(src.display, line, col)
        return None

    def in_contacts(self, path: Path_, key: bool = False) -> Location:
        """Position of ("contacts", <E.164 or index>, field?) in contacts.yaml or contacts.csv."""
        ref = path[1] if len(path) > 1 else None
        index = ref if isinstance(ref, int) else self.contact_index.get(str(ref)) if ref is not None else None
        if self.csv_rows is not None:
            src = self.files[CONTACTS]
            if index is None or not 0 <= index < len(self.csv_rows):
                return Location(src.display, 1, 1)
            row = self.csv_rows[index]
            fld = path[2] if len(path) > 2 else None
            return Location(src.display, row.line, row.cols.get(str(fld), 1) if fld is not None else 1)
        if index is None:
            return self.in_file(CONTACTS, ("contacts",), key)
        return self.in_file(CONTACTS, ("contacts", index, *path[2:]), key)

    def in_outreach(self, path: Path_, key: bool = False) -> Location:
        """Position of ("outreach", <policy>, ...); a target may be named by its spec index or its contact."""
        if len(path) >= 4 and path[2] == "targets" and isinstance(path[3], str):
            specs = self.target_specs.get(str(path[1]), [])
            tags = set(self.contact_tags.get(path[3], []))
            index = next((i for i, (c, _) in enumerate(specs) if c == path[3]), None)
            if index is None:
                index = next((i for i, (_, t) in enumerate(specs) if t in tags), None)
            if index is not None:
                return self.in_file(OUTREACH, ("policies", path[1], "targets", index), key)
        return self.in_file(OUTREACH, ("policies", *path[1:]), key)

    def locate(self, path: Sequence[str | int], key: bool = False) -> Location:
        """Position of a TenantConfig path such as ("numbers", "tio-joao", "persona")."""
        p = tuple(path)
        head = p[0] if p else None
        if head in (NUMBERS, PERSONAS):
            return self.in_file(str(head), p, key)
        if head == "conversations" and len(p) >= 2:
            return self.in_conversation(str(p[1]), p[2:], key)
        if head == CONTACTS:
            return self.in_contacts(p, key)
        if head == OUTREACH:
            return self.in_outreach(p, key)
        return self.in_file(TENANT, p, key)


def _better(a: tuple[int, int, Location] | None, b: tuple[int, int, Location]) -> tuple[int, int, Location]:
    return b if a is None or (b[0], b[1]) > (a[0], a[1]) else a
