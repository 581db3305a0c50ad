"""Watching a folder for changes (``watchfiles``): debounced batches of changed paths, turned into the scope
of the next sync.

A batch of changes to files becomes a partial sync of just those relative paths (a rename is a deletion
and an addition in the same batch, so it is found as a move). A change to a folder, to an ignore file
(``.gitignore``/``.ignore``) or outside the folder makes the next sync a full one (``None``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from diver.text.walk import IGNORE_FILES, never_walked

log = logging.getLogger(__name__)
DEFAULT_DEBOUNCE_MS = 1600
STOP_POLL_MS = 500
"""How often the watcher checks its stop event while no change arrives."""


def scope_of(folder: Path, changed: Iterable[str]) -> frozenset[str] | None:
    """Relative posix paths of the changed files, or None when the next sync must look at everything.
    Changes in hidden or default-skipped places are dropped (an empty scope: nothing to sync)."""
    scope = set()
    for raw in changed:
        path = Path(os.path.realpath(raw)) if os.path.lexists(raw) else Path(raw)
        try:
            rel = path.relative_to(folder).as_posix()
        except ValueError:
            return None
        if rel in ("", ".") or path.name in IGNORE_FILES or path.is_dir():
            return None
        if not never_walked(rel):
            scope.add(rel)
    return frozenset(scope)


def watch_changes(
    folder: Path, stop: threading.Event, debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    on_ready: Callable[[], None] | None = None,
) -> Iterator[frozenset[str] | None]:  # fmt: skip
    """Yield the scope of each debounced batch of changes under ``folder`` until ``stop`` is set.

    ``on_ready`` runs once the watcher is in place (the initial sync goes there): a change made while it
    runs is held by the watcher and comes out as the next batch, so none falls between sync and watch."""
    import watchfiles  # a dependency of the default install; imported here, where a watch starts

    ready = False
    for changes in watchfiles.watch(
        folder,
        debounce=debounce_ms,
        stop_event=stop,
        rust_timeout=STOP_POLL_MS,
        yield_on_timeout=True,  # the first timeout says the watcher runs
        raise_interrupt=False,
    ):
        if not ready:
            ready = True
            if on_ready is not None:
                on_ready()  # covers whatever this first batch held: it reads everything
            continue
        scope = scope_of(folder, (path for _, path in changes)) if changes else frozenset()
        if scope is not None and not scope:
            continue
        log.info("changes under %s: %s", folder, "all" if scope is None else len(scope))
        yield scope
