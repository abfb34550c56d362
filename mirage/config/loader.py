"""tenants.d/ -> Fleet: every tenant folder loaded (tenant_loader.py), all problems reported at once.

The shell of the configuration: it reads the folder and the process environment (`${VAR}` in non-secret
fields); the models below it only see the mapping they are given.
"""

from __future__ import annotations

import gc
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from mirage.config.fleet import Fleet
from mirage.config.sources import TenantSources
from mirage.config.tenant import TenantConfig
from mirage.config.tenant_loader import display_path, load_tenant, outside_message
from mirage.errors import ConfigError, Problem


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
        if p.is_symlink() and not p.resolve().is_relative_to(boundary):
            problems.append(Problem(os.path.join(shown, p.name), 0, 0, outside_message(boundary)))
            continue
        folders.append(p)
    if only is not None:
        names = {p.name for p in folders}
        problems += [Problem(display_path(root / s), 0, 0, "no such tenant folder") for s in only if s not in names]
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
    problems += shared_numbers(fleet)
    if problems:
        raise ConfigError(sorted(set(problems), key=lambda p: (p.path, p.line, p.col, p.message)))
    return fleet


def shared_numbers(fleet: Fleet) -> list[Problem]:
    """A WhatsApp number declared by two tenants: one problem at each declaration, naming the other."""
    owners: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for slug, tenant in sorted(fleet.tenants.items()):
        for key, number in tenant.numbers.items():
            owners[number.number].append((slug, key))
    problems = []
    for e164, declared in owners.items():
        if len({slug for slug, _ in declared}) < 2:
            continue
        where = {(slug, key): fleet.locate(slug, "numbers", key, "number") for slug, key in declared}
        for slug, key in declared:
            path, line, col = where[(slug, key)]
            for other, other_key in declared:
                if other == slug:
                    continue
                o_path, o_line, o_col = where[(other, other_key)]
                problems.append(
                    Problem(
                        path,
                        line,
                        col,
                        f"number {e164} is also declared by tenant '{other}' ({o_path}:{o_line}:{o_col}): "
                        "one WhatsApp number belongs to one tenant",
                    )
                )
    return problems
