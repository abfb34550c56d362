"""tenants.d/ -> Fleet: every tenant folder loaded (tenant_loader.py), all problems reported at once."""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from mirage.config.fleet import Fleet
from mirage.config.sources import TenantSources
from mirage.config.tenant import TenantConfig
from mirage.config.tenant_loader import display_path, load_tenant
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
    problems: list[Problem] = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if only is not None:
        names = {p.name for p in folders}
        problems += [Problem(display_path(root / s), 0, 0, "no such tenant folder") for s in only if s not in names]
        folders = [p for p in folders if p.name in set(only)]
    shown = display_path(root)
    shown = "" if shown == "." else shown
    tenants: dict[str, TenantConfig] = {}
    sources: dict[str, TenantSources] = {}
    empty: list[str] = []
    # Loading allocates many short-lived objects and no cycles: the cyclic GC would only rescan what we keep.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for folder in folders:
            config, srcs, found = load_tenant(folder, environ, os.path.join(shown, folder.name))
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
    if problems:
        raise ConfigError(sorted(set(problems), key=lambda p: (p.path, p.line, p.col, p.message)))
    return Fleet(root=root, tenants=tenants, empty_dirs=empty, sources=sources)
