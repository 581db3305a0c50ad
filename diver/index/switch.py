"""Switching a collection's vectors to another named store: copy, record the old name, switch, drop.

Used by the dense rebuild (``diver.index.dense.rebuild``) and by ``diver reindex`` (``diver.train.reindex``).
Crash safety comes from meta.json (``diver.index.meta``), replaced atomically at each step:

1. ``start_copy``: leftover copies recorded under ``stale_store_names`` are dropped; the copy's exact
   name is recorded there (with the caller's own keys, e.g. reindex's pending model) *before* the copy is
   created, so a crash leaves meta.json on the live store and the copy findable by exact name.
2. the caller fills the copy.
3. ``finish_switch``: one meta.json write switches ``store_name`` (plus the caller's updates) and records
   the old store as stale; then the old store is dropped and the stale record cleared. A crash between
   the two leaves a live collection whose leftover the next copy, or ``drop``, deletes.

Stores are never matched by prefix: ``notes-v2`` is another collection, not a copy of ``notes``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from diver.index.host import Switchable
from diver.index.meta import STALE_STORE_NAMES, write_meta
from diver.index.stores.base import VectorStore


def start_copy(
    col: Switchable, record: Callable[[str], Mapping[str, Any]] | None = None, resume: str | None = None
) -> VectorStore:
    """Record and open the store the collection's vectors are copied into (``resume``: continue that copy).

    ``record(name)``: the caller's own meta.json keys about the copy, written with its name."""
    backend = col.engine.backend
    live = col.meta["store_name"]
    for stale in col.meta.get(STALE_STORE_NAMES, []):  # an earlier copy, or what an earlier switch replaced
        if stale not in (live, resume):
            backend.drop(stale)
    name = resume or backend.store_name(col.engine.store_id, col.name, int(time.time() * 1000))
    extra = record(name) if record is not None else {}
    col.meta = {**col.meta, **extra, STALE_STORE_NAMES: [name]}  # half-built until the switch
    write_meta(col.directory, col.meta)
    return backend.open(name, create=True)


def finish_switch(
    col: Switchable, fresh: VectorStore, update: Mapping[str, Any] | None = None, remove: Iterable[str] = ()
) -> None:
    """Make ``fresh`` the collection's store in one meta.json write (with ``update``, without the ``remove``
    keys), then drop the store it replaced."""
    old = col.meta["store_name"]
    gone = set(remove)
    switched = {k: v for k, v in col.meta.items() if k not in gone}
    switched.update(update or {})
    switched.update({"store_name": fresh.name, STALE_STORE_NAMES: [old]})
    write_meta(col.directory, switched)  # the switch: one atomic rename
    col.meta, col.store = switched, fresh
    col.engine.backend.drop(old)
    col.meta = {k: v for k, v in switched.items() if k != STALE_STORE_NAMES}
    write_meta(col.directory, col.meta)
