"""Vectors for a batch of prepared documents: embedded, or copied from the chunks of a document that moved.

A renamed file keeps its text under a new id; its chunk keys change (they derive from id and content) but
a chunk with the same span of the same text has the same vector, so ``Collection.move`` copies it from the
store instead of embedding it again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diver.errors import EmbedderMismatch
from diver.index.catalog import Catalog, PreparedDocument
from diver.index.stores.base import VectorStore


def reusable_vectors(catalog: Catalog, store: VectorStore, old_id: str, item: PreparedDocument) -> dict[str, Any]:
    """New chunk key -> stored vector of ``old_id``'s chunk with the same span, when the texts are equal."""
    text, old_keys = catalog.chunk_keys_by_span(old_id)
    if text != item.document.text:
        return {}
    pairs = [(key, old_keys[(c.start, c.end)]) for key, c in zip(item.keys, item.chunks, strict=True)
             if (c.start, c.end) in old_keys]  # fmt: skip
    stored = store.get_vectors([old for _, old in pairs])
    return {new: stored[old] for new, old in pairs if old in stored}


def chunk_vectors(prepared: list[PreparedDocument], embedder: Any, reuse: dict[str, Any], dims: int) -> np.ndarray:
    """One vector per chunk key of ``prepared`` (in order): from ``reuse`` by key, else embedded (one call)."""
    keys = [k for p in prepared for k in p.keys]
    texts = [c.text for p in prepared for c in p.chunks]
    missing = [i for i, key in enumerate(keys) if key not in reuse]
    embedded = embedder.embed_documents([texts[i] for i in missing]) if missing else None
    if embedded is not None and embedded.shape != (len(missing), dims):
        raise EmbedderMismatch(f"embedder returned {embedded.shape}, expected ({len(missing)}, {dims})")
    if embedded is not None and len(missing) == len(keys):
        return np.asarray(embedded)
    vectors = np.empty((len(keys), dims), dtype=np.float32)
    for i, key in enumerate(keys):
        if key in reuse:
            vectors[i] = reuse[key]
    if embedded is not None:
        vectors[missing] = embedded
    return vectors
