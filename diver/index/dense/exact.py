"""Exact dense search from an in-memory matrix of a collection's chunk vectors, kept in step with the catalog.

Below a few tens of thousands of chunks one matrix-vector product beats any ANN index (chroma's HNSW
pays about a millisecond of fixed cost per query, and reading each result's id costs more), and it is
exact. ``StoreSettings.dense_search`` / ``dense_exact_below`` choose the path per collection size
(``diver.index.collection``); this module holds the matrix.

Correctness across writes and processes: the matrix is stamped with the vector store it was read
from and the catalog ``generation`` it mirrors. Every search reads the generation from its own catalog
snapshot (one primary-key lookup); a different one (a write by this process or any other: the catalog
bumps it in the very transaction that makes chunks visible or invisible) re-syncs the matrix to exactly
the chunks that snapshot sees before it is used. A stale matrix therefore never serves a search.

Re-syncing is incremental: a chunk key is ``<hash of (document id, content)>-<chunk index>``, so within
one vector store a key's vector never changes; rows of kept keys are copied, only new keys' vectors
are read from the store (visible chunks' vectors are written there before the catalog commit shows them). A
switch of store (a dense rebuild, ``diver reindex`` with another model) reloads everything.

Memory: rows x dimensions x 4 bytes (e.g. 20k x 384 = 31 MB), plus the keys; released with ``drop``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from diver.index.catalog import snapshot_generation
from diver.index.stores.base import Space, VectorStore

log = logging.getLogger(__name__)
DocHits = dict[str, tuple[float, int]]  # doc id -> (MAX chunk similarity, best chunk index)
QUERY_BLOCK = 32  # queries scored per matrix product


@dataclass(frozen=True)
class ExactMatrix:
    """The visible chunks of one catalog generation: vectors and the row -> document map."""

    store_name: str
    space: Space  # the store's similarity: rows are unit vectors for cosine
    generation: int
    keys: list[str]  # row -> chunk key
    matrix: np.ndarray  # float32 [rows, dim]; unit rows for cosine
    sq_norms: np.ndarray | None  # l2 only: squared row norms
    doc_ids: list[str]  # document number -> id
    doc_starts: np.ndarray  # first row of each document (rows of a document are contiguous)
    chunk_index: np.ndarray  # row -> chunk number in its document
    missing: int = 0  # visible chunks without a stored vector (skipped, as HNSW would never return them)
    _key_row: dict[str, int] | None = field(default=None, repr=False, compare=False)
    _position: dict[str, int] | None = field(default=None, repr=False, compare=False)

    @property
    def rows(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes)

    def key_row(self) -> dict[str, int]:
        if self._key_row is None:
            object.__setattr__(self, "_key_row", {k: i for i, k in enumerate(self.keys)})
        return self._key_row  # type: ignore[return-value]

    def positions(self, doc_ids: set[str] | frozenset[str]) -> np.ndarray:
        if self._position is None:
            object.__setattr__(self, "_position", {d: i for i, d in enumerate(self.doc_ids)})
        position = self._position
        assert position is not None
        found = [position[d] for d in doc_ids if d in position]
        return np.fromiter(found, dtype=np.int64, count=len(found))


class ExactIndex:
    """The exact matrix of one collection, synced to the generation of the snapshot that asks for it."""

    def __init__(self) -> None:
        self._current: ExactMatrix | None = None
        self._lock = threading.Lock()
        self.syncs = 0  # how many times the matrix was (re)built: for tests and diagnostics

    @property
    def current(self) -> ExactMatrix | None:
        return self._current

    def drop(self) -> None:
        """Release the matrix (the collection grew past the exact-search size)."""
        self._current = None

    def matrix_for(self, db: sqlite3.Connection, store: VectorStore) -> ExactMatrix:
        """The matrix of exactly the chunks ``db`` (a catalog snapshot) sees, built or re-synced if needed."""
        generation = snapshot_generation(db)
        current = self._current
        if current is not None and current.store_name == store.name and current.generation == generation:
            return current
        with self._lock:
            current = self._current
            if current is not None and current.store_name == store.name and current.generation == generation:
                return current
            reuse = current if current is not None and current.store_name == store.name else None
            built = self._build(db, store, generation, reuse)
            self.syncs += 1
            if current is None or current.store_name != store.name or generation >= current.generation:
                self._current = built  # an older snapshot's matrix serves that search only
            return built

    # Over 60 lines: one pass over the snapshot's rows that fills several aligned arrays at once.
    def _build(
        self, db: sqlite3.Connection, store: VectorStore, generation: int, reuse: ExactMatrix | None
    ) -> ExactMatrix:
        rows = db.execute("SELECT key, doc_id, idx FROM chunks ORDER BY doc_id, idx").fetchall()
        keys = [r[0] for r in rows]
        old_rows = np.full(len(keys), -1, dtype=np.int64)
        if reuse is not None and reuse.rows:
            lookup = reuse.key_row()
            old_rows = np.fromiter((lookup.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        new_keys = [k for k, r in zip(keys, old_rows.tolist(), strict=True) if r < 0]
        fetched = store.get_vectors(new_keys) if new_keys else {}
        dim = (
            reuse.matrix.shape[1]
            if reuse is not None and reuse.rows
            else len(next(iter(fetched.values()))) if fetched else 0
        )
        keep = (old_rows >= 0) | np.fromiter((k in fetched for k in keys), dtype=bool, count=len(keys))
        missing = int(len(keys) - keep.sum())
        if missing:
            log.warning(
                "vector store %s lacks %d visible chunks' vectors; exact search skips them", store.name, missing
            )
        matrix = np.empty((int(keep.sum()), dim), dtype=np.float32)
        out_row = 0
        fresh_rows: list[int] = []
        fresh_vectors: list[np.ndarray] = []
        take_from: list[int] = []
        take_to: list[int] = []
        for key, old, kept in zip(keys, old_rows.tolist(), keep.tolist(), strict=True):
            if not kept:
                continue
            if old >= 0:
                take_from.append(old)
                take_to.append(out_row)
            else:
                fresh_rows.append(out_row)
                fresh_vectors.append(fetched[key])
            out_row += 1
        if take_from:
            assert reuse is not None
            matrix[np.asarray(take_to)] = reuse.matrix[np.asarray(take_from)]
        if fresh_rows:
            block = np.asarray(np.stack(fresh_vectors), dtype=np.float32)
            if store.space == "cosine":
                block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
            matrix[np.asarray(fresh_rows)] = block
        kept_rows = [r for r, k in zip(rows, keep.tolist(), strict=True) if k]
        doc_ids: list[str] = []
        starts: list[int] = []
        for i, (_, doc_id, _) in enumerate(kept_rows):
            if not doc_ids or doc_ids[-1] != doc_id:
                doc_ids.append(doc_id)
                starts.append(i)
        return ExactMatrix(
            store_name=store.name,
            space=store.space,
            generation=generation,
            keys=[r[0] for r in kept_rows],
            matrix=matrix,
            sq_norms=(matrix**2).sum(1) if store.space == "l2" else None,
            doc_ids=doc_ids,
            doc_starts=np.asarray(starts, dtype=np.int64),
            chunk_index=np.asarray([r[2] for r in kept_rows], dtype=np.int32),
            missing=missing,
        )

    def search(
        self,
        m: ExactMatrix,
        vectors: np.ndarray,
        want: int,
        exclude: Sequence[set[str]],
        allowed: frozenset[str] | None = None,
    ) -> list[DocHits]:
        """The ``want`` best documents per query by MAX chunk similarity (the store's similarity), exactly."""
        out: list[DocHits] = [{} for _ in range(len(vectors))]
        if m.rows == 0 or want <= 0:
            return out
        keep = None
        if allowed is not None:
            keep = np.zeros(len(m.doc_ids), dtype=bool)
            keep[m.positions(allowed)] = True
        queries = np.asarray(vectors, dtype=np.float32)
        sims = np.zeros((0, m.rows), dtype=np.float32)
        for i in range(len(vectors)):
            if i % QUERY_BLOCK == 0:  # a block of queries per product: bounded memory for large batches
                sims = similarity_rows(queries[i : i + QUERY_BLOCK], m, m.space)
            row = sims[i % QUERY_BLOCK]
            doc_scores = np.maximum.reduceat(row, m.doc_starts)
            if keep is not None:
                doc_scores = np.where(keep, doc_scores, -np.inf)
            if exclude[i]:
                doc_scores[m.positions(exclude[i])] = -np.inf
            out[i] = _top_documents(m, row, doc_scores, want)
        return out


def similarity_rows(queries: np.ndarray, m: ExactMatrix, space: str) -> np.ndarray:
    """[queries, rows] similarity as the store reports it (1 - cosine distance, inner product, -squared L2)."""
    if space == "cosine":
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    dots: np.ndarray = queries @ m.matrix.T
    if space == "l2":
        assert m.sq_norms is not None
        neg_sq: np.ndarray = -np.maximum((queries**2).sum(1)[:, None] + m.sq_norms[None, :] - 2.0 * dots, 0.0)
        return neg_sq
    return dots


def _top_documents(m: ExactMatrix, row: np.ndarray, doc_scores: np.ndarray, want: int) -> DocHits:
    n = len(doc_scores)
    if want < n:  # every document scoring at least the want-th best: ties at the cut go by id, as in rollup_max
        kth = np.partition(doc_scores, n - want)[n - want]
        top = np.flatnonzero(doc_scores >= kth)
    else:
        top = np.arange(n)
    picked = []
    ends = np.append(m.doc_starts[1:], m.rows)
    for d in top.tolist():
        score = float(doc_scores[d])
        if score == -np.inf:
            continue
        start, end = int(m.doc_starts[d]), int(ends[d])
        best_row = start + int(np.argmax(row[start:end]))
        picked.append((m.doc_ids[d], score, int(m.chunk_index[best_row])))
    picked.sort(key=lambda p: (-p[1], p[0]))
    return {doc_id: (score, chunk) for doc_id, score, chunk in picked[:want]}
