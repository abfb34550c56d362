"""`mirage apply --watch`: run an action (plan, or plan and apply) again whenever tenant files are saved."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import watchfiles

from mirage.errors import MirageError

log = logging.getLogger(__name__)

WATCHED_SUFFIXES = (".yaml", ".yml", ".csv")


def tenant_file_filter(change: watchfiles.Change, path: str) -> bool:
    """Only tenant files count; editor swap files and the like do not."""
    name = Path(path).name
    return name.endswith(WATCHED_SUFFIXES) and not name.startswith((".", "~"))


def watch(
    root: Path,
    action: Callable[[], None],
    *,
    debounce_ms: int = 400,
    on_change: Callable[[], None] | None = None,
    on_error: Callable[[MirageError], None] | None = None,
    stop_event: Any = None,
    run_first: bool = True,
) -> int:
    """Run `action` now and after every batch of saved changes under `root` (debounced); returns the runs.

    A MirageError (invalid YAML, a refused apply) is reported through `on_error` and watching goes on;
    anything else propagates. Stops on Ctrl-C or when `stop_event` is set.
    """
    runs = 0

    def run() -> None:
        nonlocal runs
        runs += 1
        try:
            action()
        except MirageError as e:
            if on_error is None:
                log.error("watch: %s", e)
            else:
                on_error(e)

    if run_first:
        run()
    for _changes in watchfiles.watch(
        root,
        watch_filter=tenant_file_filter,
        debounce=debounce_ms,
        stop_event=stop_event,
        raise_interrupt=False,
    ):
        if on_change is not None:
            on_change()
        run()
    return runs
