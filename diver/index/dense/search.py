"""Dense retrieval over chunk vectors, rolled up to documents, that always finds enough documents.

The vector store ranks *chunks*; a search needs *documents*. How many chunks make ``n`` distinct documents
depends on the length distribution: one document of 1,000 chunks can fill any fixed chunk budget. So the
store is asked again, for four times as many chunks each time, until the wanted number of distinct,
visible, allowed and not-excluded documents is found or the store is exhausted.

A selective metadata filter (few allowed chunks) is answered exactly instead: the allowed chunks' vectors
are read from the store and scored with numpy, so a filter that matches 1% of the corpus still returns
``min(k, matching documents)`` documents, never a post-filtered fraction.

``search_dense`` picks the path: a collection below ``StoreSettings.dense_exact_below`` chunks (or
``dense_search='exact'``) is scored exactly from the in-memory matrix of ``diver.index.dense.exact``, filters
and excludes included; larger ones go to HNSW as above.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from diver.config import StoreSettings
from diver.index.catalog import Catalog, snapshot_generation
from diver.index.dense.exact import ExactIndex
from diver.index.stores.base import VectorStore
from diver.text.documents import ChunkScore, DocScore, rollup_max

GROWTH = 4  # each re-ask multiplies the chunk budget by this
EXACT_FILTER_CHUNKS = 20_000  # a filter allowing at most this many chunks is scored exactly


@dataclass(frozen=True)
class Allowed:
    """Documents that a filter lets through, how many chunks they have, and the filter (for their keys)."""

    doc_ids: frozenset[str]
    chunk_count: int
    condition: tuple[str, list[Any]]


DocHits = dict[str, tuple[float, int]]  # doc id -> (MAX chunk similarity, best chunk index)

# ef_search by collection size (chunks): measured on real MiniLM-derived vectors on the 2-core machine,
# chunk-level recall@10 vs exact: 167k at 100 -> 0.979 (doc-level 0.966); 1M at 100 -> 0.868, 200 -> 0.931,
# 400 -> 0.955 (benchmarks/results/vm-2026-11-27-hnsw-1m-ef.json). Between 200k and 1.2M the 1M value is
# used (a smaller graph needs no wider beam); past 1.2M the beam grows with the size, extrapolated, not measured.
EF_BY_SIZE: tuple[tuple[int, int], ...] = ((200_000, 100), (1_200_000, 400))


def search_beam_for(chunks: int, settings: StoreSettings) -> int:
    """The HNSW beam (ef_search) for a collection of ``chunks``: at least ``hnsw_search_ef``; with
    ``hnsw_search_ef_by_size`` the EF_BY_SIZE table, and past its end 400 per million chunks."""
    if not settings.hnsw_search_ef_by_size:
        return settings.hnsw_search_ef
    for limit, beam in EF_BY_SIZE:
        if chunks <= limit:
            return max(settings.hnsw_search_ef, beam)
    return max(settings.hnsw_search_ef, EF_BY_SIZE[-1][1] * chunks // 1_000_000)


def similarities(vectors: np.ndarray, matrix: np.ndarray, space: str) -> np.ndarray:
    """The store's similarity (1 - cosine distance, inner product, or -squared L2), computed exactly."""
    queries = np.asarray(vectors, dtype=np.float32)
    matrix = np.asarray(matrix, dtype=np.float32)
    if space == "cosine":
        qn = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        mn = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        cosine: np.ndarray = qn @ mn.T
        return cosine
    dots: np.ndarray = queries @ matrix.T
    if space == "ip":
        return dots
    sq = (queries**2).sum(1)[:, None] + (matrix**2).sum(1)[None, :] - 2.0 * dots
    neg_sq: np.ndarray = -np.maximum(sq, 0.0)
    return neg_sq


def _roll_up(
    row: Sequence[tuple[str, float]],
    resolved: dict[str, tuple[str, int]],
    exclude: set[str],
    allowed: Allowed | None,
) -> list[DocScore]:
    scores: list[ChunkScore] = []
    for key, score in row:
        hit = resolved.get(key)
        if hit is None or hit[0] in exclude:
            continue  # not (or no longer) visible, or excluded by the caller
        if allowed is not None and hit[0] not in allowed.doc_ids:
            continue
        scores.append(ChunkScore(hit[0], hit[1], score))
    return rollup_max(scores)


def dense_documents(
    store: VectorStore,
    catalog: Catalog,
    db: sqlite3.Connection,
    vectors: np.ndarray,
    want: int,
    exclude: Sequence[set[str]],
    allowed: Allowed | None = None,
    chunks_per_document: float = 2.0,
    total: int | None = None,
    beam: int = 0,
) -> list[DocHits]:
    """The ``want`` best documents per query vector, by MAX chunk similarity (fewer only if fewer exist).

    ``total``: the visible chunks (the catalog's count); None = ask the store (a round trip). ``beam``: ask
    the store for at least this many chunks (hnswlib searches with max(ef, results asked), so this widens
    the beam) and keep the best ``n`` of them."""
    if allowed is not None and allowed.chunk_count <= EXACT_FILTER_CHUNKS:
        return _exact(store, catalog, db, vectors, want, exclude, allowed)
    total = store.count() if total is None else total
    out: list[DocHits] = [{} for _ in range(len(vectors))]
    if total == 0 or want <= 0:
        return out
    widest = max((len(ex) for ex in exclude), default=0)
    n = int((want + widest) * max(1.0, chunks_per_document)) + 10
    if allowed is not None:  # post-filtered: ask for as many more as the filter removes
        n = int(n * max(1.0, total / max(1, allowed.chunk_count)))
    pending = list(range(len(vectors)))
    while pending:
        n = min(n, total)
        raw = [row[:n] for row in store.query(vectors[pending], max(n, min(beam, total)))]
        resolved = catalog.resolve(db, list({key for row in raw for key, _ in row}))
        still = []
        for i, row in zip(pending, raw, strict=True):
            docs = _roll_up(row, resolved, exclude[i], allowed)
            out[i] = {d.doc_id: (d.score, d.best_chunk) for d in docs[:want]}
            if len(docs) < want and len(row) >= n and n < total:
                still.append(i)  # not enough distinct documents yet, and the store has more chunks
        pending = still
        n *= GROWTH
    return out


def _exact(
    store: VectorStore,
    catalog: Catalog,
    db: sqlite3.Connection,
    vectors: np.ndarray,
    want: int,
    exclude: Sequence[set[str]],
    allowed: Allowed,
) -> list[DocHits]:
    out: list[DocHits] = [{} for _ in range(len(vectors))]
    keys = catalog.allowed_keys(db, allowed.condition)  # read only for the exact path: few by design
    if not keys or want <= 0:
        return out
    stored = store.get_vectors(keys)
    keys = [k for k in keys if k in stored]
    if not keys:
        return out
    sims = similarities(vectors, np.stack([stored[k] for k in keys]), store.space)
    resolved = catalog.resolve(db, keys)
    for i in range(len(vectors)):
        row = list(zip(keys, sims[i].tolist(), strict=True))
        docs = _roll_up(row, resolved, exclude[i], allowed)
        out[i] = {d.doc_id: (d.score, d.best_chunk) for d in docs[:want]}
    return out


class DensePlanner:
    """Chooses exact or HNSW per collection size and holds the collection's exact matrix."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self.exact = ExactIndex()  # the matrix takes the similarity of the store it is read from
        self._count: tuple[int, int] | None = None  # (generation, visible chunks)

    def chunk_count(self, db: sqlite3.Connection) -> int:
        """Visible chunks in the snapshot ``db``, counted once per catalog generation."""
        generation = snapshot_generation(db)
        cached = self._count
        if cached is not None and cached[0] == generation:
            return cached[1]
        count = int(db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
        self._count = (generation, count)
        return count

    def path(self, db: sqlite3.Connection) -> str:
        """'exact' or 'hnsw' for this snapshot (``dense_search``, and for 'auto' the collection size)."""
        mode = self.settings.dense_search
        if mode == "auto":
            return "exact" if self.chunk_count(db) < self.settings.dense_exact_below else "hnsw"
        return mode

    def search(
        self,
        store: VectorStore,
        catalog: Catalog,
        db: sqlite3.Connection,
        vectors: np.ndarray,
        want: int,
        exclude: Sequence[set[str]],
        allowed: Allowed | None = None,
        chunks_per_document: float = 2.0,
    ) -> tuple[list[DocHits], str]:
        """(doc hits per query, the path taken: 'exact', 'exact-filter' or 'hnsw')."""
        if self.path(db) == "exact":
            matrix = self.exact.matrix_for(db, store)
            ids = allowed.doc_ids if allowed is not None else None
            return self.exact.search(matrix, vectors, want, exclude, ids), "exact"
        self.exact.drop()  # grown past the exact size (or switched): free the matrix
        if allowed is not None and allowed.chunk_count <= EXACT_FILTER_CHUNKS:
            return _exact(store, catalog, db, vectors, want, exclude, allowed), "exact-filter"
        total = self.chunk_count(db)
        beam = search_beam_for(total, self.settings)
        found = dense_documents(store, catalog, db, vectors, want, exclude, allowed, chunks_per_document, total, beam)
        return found, "hnsw"
