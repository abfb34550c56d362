"""tenants.d/ -> Fleet: every tenant folder loaded (tenant_loader.py), all problems reported at once.

The shell of the configuration: it reads the folder and the process environment (`${VAR}` in non-secret
fields); the models below it only see the mapping they are given.
"""

from __future__ import annotations

import gc
import os
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mirage.config.fleet import Fleet
from mirage.config.sources import NUMBERS, TenantSources
from mirage.config.tenant import TenantConfig
from mirage.config.tenant_loader import display_path, leaves, load_tenant, outside_message
from mirage.config.types import E164_PATTERN
from mirage.config.yamlsource import Source, YamlError, build, compose, decode
from mirage.errors import ConfigError, Problem

E164 = re.compile(E164_PATTERN)


def load_fleet(root: Path | str, only: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Fleet:
    """Load every tenant under `root` (or those in `only`); raise ConfigError listing ALL problems found.

    `root` may also be one tenant folder (it holds tenant.yaml). `environ` resolves `${VAR}` in non-secret
    fields such as evolution.base_url (default os.environ); secrets stay references until resolved.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(Problem(display_path(root), 0, 0, "no such folder"))
    if (root / "tenant.yaml").is_file():
        only = [root.resolve().name]
        root = root.resolve().parent
    env = os.environ if environ is None else environ
    boundary = root.resolve()
    shown = display_path(root)
    shown = "" if shown == "." else shown
    problems: list[Problem] = []
    folders = []
    for p in sorted(root.iterdir()):
        if not p.is_dir() or p.name.startswith((".", "_")):
            continue
        if leaves(p, boundary):
            problems.append(Problem(os.path.join(shown, p.name), 0, 0, outside_message(boundary)))
            continue
        folders.append(p)
    others: list[Path] = []  # folders left out by `only`: read for their bot numbers alone
    if only is not None:
        names = {p.name for p in folders}
        problems += [Problem(display_path(root / s), 0, 0, "no such tenant folder") for s in only if s not in names]
        others = [p for p in folders if p.name not in set(only)]
        folders = [p for p in folders if p.name in set(only)]
    tenants: dict[str, TenantConfig] = {}
    sources: dict[str, TenantSources] = {}
    empty: list[str] = []
    # Loading allocates many short-lived objects and no cycles: the cyclic GC would only rescan what we keep.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for folder in folders:
            config, srcs, found = load_tenant(folder, env, os.path.join(shown, folder.name), boundary)
            problems += found
            if srcs is None:
                empty.append(folder.name)
                continue
            sources[folder.name] = srcs
            if config is not None:
                tenants[folder.name] = config
    finally:
        if gc_was_enabled:
            gc.enable()
    fleet = Fleet(root=root, tenants=tenants, empty_dirs=empty, sources=sources)
    # Tenants that loaded give their numbers from the models; the others (left out by `only`, or with
    # problems of their own) from their numbers.yaml read leniently, so the check does not depend on scope.
    unloaded = [p for p in [*folders, *others] if p.name not in tenants]
    declared = [d for p in unloaded for d in declared_numbers(p, os.path.join(shown, p.name), boundary)]
    owners: dict[str, set[str]] = defaultdict(set)
    for d in declared:
        owners[d.number].add(d.slug)
    for slug, config in tenants.items():
        for n in config.numbers.values():
            owners[n.number].add(slug)
    shared = {number for number, slugs in owners.items() if len(slugs) > 1}
    # positions only for numbers in conflict: locating one composes its file again (loading released the nodes)
    declared += [d for slug in sorted(tenants) for d in _declared(fleet, slug, shared)]
    problems += shared_numbers(declared, in_scope={p.name for p in folders})
    if problems:
        raise ConfigError(sorted(set(problems), key=lambda p: (p.path, p.line, p.col, p.message)))
    return fleet


@dataclass(frozen=True)
class Declared:
    """One bot number as a tenant declares it, and where."""

    number: str
    slug: str
    key: str
    path: str
    line: int
    col: int


def _declared(fleet: Fleet, slug: str, only: set[str]) -> list[Declared]:
    """The loaded tenant's bot numbers that are in `only`, with where they are written."""
    out = []
    for key, n in fleet.tenants[slug].numbers.items():
        if n.number not in only:
            continue
        path, line, col = fleet.locate(slug, "numbers", key, "number")
        out.append(Declared(n.number, slug, key, path, line, col))
    return out


def declared_numbers(folder: Path, display: str, boundary: Path) -> list[Declared]:
    """The bot numbers a tenant folder that did not load (out of the selection, or with problems) declares,
    read leniently: nothing when numbers.yaml is missing, unreadable, invalid or a link leaving `boundary`."""
    path = folder / "numbers.yaml"
    if leaves(folder, boundary) or leaves(path, boundary):
        return []
    try:
        text = decode(path.read_bytes())
        root = compose(text)
        value, _ = build(root)
    except (OSError, YamlError):
        return []
    numbers = value.get("numbers") if isinstance(value, dict) else None
    if not isinstance(numbers, dict):
        return []
    src = Source(path, os.path.join(display, "numbers.yaml"), text, NUMBERS, root)
    out = []
    for key, spec in numbers.items():
        number = spec.get("number") if isinstance(spec, dict) else None
        if isinstance(number, str) and E164.match(number):
            line, col, _ = src.find(("numbers", key, "number"))
            out.append(Declared(number, folder.name, str(key), src.display, line, col))
    return out


def shared_numbers(declared: list[Declared], in_scope: set[str]) -> list[Problem]:
    """A WhatsApp number declared by two tenants: a problem at each declaration in scope, naming the other."""
    owners: dict[str, list[Declared]] = defaultdict(list)
    for d in declared:
        owners[d.number].append(d)
    problems = []
    for e164, same in owners.items():
        if len({d.slug for d in same}) < 2:
            continue
        for d in same:
            if d.slug not in in_scope:
                continue
            for o in same:
                if o.slug == d.slug:
                    continue
                problems.append(
                    Problem(
                        d.path,
                        d.line,
                        d.col,
                        f"number {e164} is also declared by tenant '{o.slug}' ({o.path}:{o.line}:{o.col}): "
                        "one WhatsApp number belongs to one tenant",
                    )
                )
    return problems
