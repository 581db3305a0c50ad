"""Rebuilding a collection's dense index from the stored vectors (after an interrupted write)."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import numpy as np

from diver.errors import StateError
from diver.index.catalog import Catalog
from diver.index.host import Switchable
from diver.index.switch import finish_switch, start_copy

log = logging.getLogger(__name__)
PAGE = 2000


class Rebuildable(Switchable, Protocol):
    catalog: Catalog

    def _embedder(self) -> Any: ...


def rebuild_dense(col: Rebuildable) -> None:
    """Copy every visible chunk's vector into a fresh store and switch to it atomically (``diver.index.switch``).

    Vectors come from the old store's records; any it lacks are embedded again from the catalog text. A
    crash mid-rebuild leaves meta.json on the old store, the dirty flag set, and the copy findable by
    name: the next open deletes it and redoes the rebuild.
    """
    started = time.perf_counter()
    fresh = start_copy(col)
    keys = sorted(col.catalog.all_keys())
    re_embedded = 0
    for start in range(0, len(keys), PAGE):
        page = keys[start : start + PAGE]
        try:
            found = col.store.get_vectors(page)
        except StateError as exc:  # the damaged store cannot even return them: embed again
            log.warning("%s", exc)
            found = {}
        missing = [k for k in page if k not in found]
        if missing:
            texts = col.catalog.chunk_texts(missing)
            vectors = col._embedder().embed_documents([texts[k] for k in missing])
            found.update(zip(missing, vectors, strict=True))
            re_embedded += len(missing)
        fresh.upsert(page, np.stack([found[k] for k in page]) if page else np.zeros((0, 1)))
    finish_switch(col, fresh)
    log.warning(
        "collection %s: rebuilt the dense index after an interrupted write (%d vectors, %d re-embedded, %.1fs)",
        col.name,
        len(keys),
        re_embedded,
        time.perf_counter() - started,
    )
