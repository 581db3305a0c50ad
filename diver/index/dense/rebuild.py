"""Rebuilding a collection's dense index from the stored vectors (after an interrupted write)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from diver.errors import StateError

if TYPE_CHECKING:
    from diver.index.collection import Collection

log = logging.getLogger(__name__)


def rebuild_dense(col: Collection) -> None:
        """Copy every visible chunk's vector into a fresh chroma collection and switch to it atomically.

        Vectors come from chroma's record store; any it lacks are embedded again from the catalog text.
        The copy's exact name is recorded in meta.json (``stale_store_names``) before it is created, so a
        crash mid-rebuild leaves meta.json on the old collection, the flag set, and the copy findable by
        name: the next open deletes it and redoes the rebuild. Chroma collections are never matched by prefix.
        """
        from diver.index.meta import STALE_STORE_NAMES, write_meta
        from diver.index.stores.chroma import VectorStore, drop_vector_collection, store_collection_name

        started = time.perf_counter()
        client, settings = col.engine.client, col.engine.settings.store
        old_name = col.meta["store_name"]
        for stale in col.meta.get(STALE_STORE_NAMES, []):  # an earlier rebuild's copy, or what it replaced
            if stale != old_name:
                drop_vector_collection(client, stale)
        new_name = store_collection_name(col.engine.store_id, col.name, int(time.time() * 1000))
        col.meta = {**col.meta, STALE_STORE_NAMES: [new_name]}  # half-built until the switch below
        write_meta(col.directory, col.meta)
        fresh = VectorStore(client, new_name, settings, create=True)
        keys = sorted(col.catalog.all_keys())
        re_embedded = 0
        for start in range(0, len(keys), 2000):
            page = keys[start : start + 2000]
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
        col.meta = {**col.meta, "store_name": new_name, STALE_STORE_NAMES: [old_name]}
        write_meta(col.directory, col.meta)
        col.store = fresh
        drop_vector_collection(client, old_name)
        col.meta = {k: v for k, v in col.meta.items() if k != STALE_STORE_NAMES}
        write_meta(col.directory, col.meta)
        log.warning(
            "collection %s: rebuilt the dense index after an interrupted write (%d vectors, %d re-embedded, %.1fs)",
            col.name,
            len(keys),
            re_embedded,
            time.perf_counter() - started,
        )
