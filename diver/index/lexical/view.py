"""The BM25 side of a collection: an index over every chunk of one catalog generation, with the row map
that rolls chunk scores up to documents (MAX).

Kept fresh incrementally (issue 13): a full build happens only when nothing usable is on disk. After a
write, the next search compares the catalog with the view it has by document ``seq`` (AUTOINCREMENT,
so a replaced document has a new one): documents above the view's highest ``seq`` are tokenized into a
new small segment, documents of the view the catalog no longer holds become tombstones. This costs
O(changed documents) plus a few O(rows) array passes instead of re-tokenizing everything (28 s at 167k
chunks), and ``diver.index.lexical.bm25`` computes N, df and avgdl over the live rows, so scores equal a rebuild's.
Segments are folded into one (no re-tokenizing: their postings are concatenated, deleted rows dropped)
when the deltas pass ``MERGE_FRACTION`` of the base's rows, deleted rows pass ``DEAD_FRACTION`` of all,
or there are more than ``MAX_SEGMENTS``, so query time stays that of one index. The merge runs in the
search that finds the threshold passed: O(postings), about 2 s at 167k chunks, once per 10% of growth.
Persistence and crash safety: ``diver.index.lexical.store``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from diver.config import BM25Settings
from diver.errors import CorruptIndex
from diver.index.catalog import Catalog, snapshot_generation
from diver.index.lexical.bm25 import LexicalIndex, top_k
from diver.index.lexical.segments import merge_postings
from diver.index.lexical.store import (
    Segment,
    clean,
    load_segment,
    manifests,
    new_name,
    read_manifest,
    read_segment,
    save_segment,
    write_manifest,
)

log = logging.getLogger(__name__)
MERGE_FRACTION = 0.1
DEAD_FRACTION = 0.2
MAX_SEGMENTS = 8


class LexicalView:
    """One generation: segments in row order, deleted documents per segment, and the BM25 index."""

    def __init__(
        self,
        generation: int,
        segments: list[Segment],
        dead_docs: list[np.ndarray | None],
        max_seq: int,
        index: LexicalIndex,
    ) -> None:
        self.generation, self.segments, self.dead_docs = generation, segments, dead_docs
        self.max_seq, self.index = max_seq, index
        offsets = index.offsets[: len(segments)]
        self.row_doc_ids = [doc_id for s in segments for doc_id in s.doc_ids]  # dead documents included
        self.doc_starts = _concat(
            [s.doc_starts + o for s, o in zip(segments, offsets, strict=True)], np.int64
        )
        self.chunk_index = _concat([s.chunk_index for s in segments], np.int32)
        live = [
            np.ones(len(s.doc_ids), bool) if d is None else ~d
            for s, d in zip(segments, dead_docs, strict=True)
        ]
        self.doc_live = _concat(live, bool)
        self._position: dict[str, int] | None = None
        self._doc_ids: list[str] | None = None

    @property
    def doc_ids(self) -> list[str]:
        """The live documents (each once)."""
        if self._doc_ids is None:
            self._doc_ids = [
                d for d, live in zip(self.row_doc_ids, self.doc_live.tolist(), strict=True) if live
            ]
        return self._doc_ids

    @property
    def chunks_per_document(self) -> float:
        return self.index.num_live / max(1, len(self.doc_ids))

    def positions(self, doc_ids: set[str] | frozenset[str]) -> np.ndarray:
        """Positions (in this view's document order) of the given documents that the view holds live."""
        if self._position is None:
            live = self.doc_live.tolist()
            self._position = {d: i for i, d in enumerate(self.row_doc_ids) if live[i]}
        found = [self._position[d] for d in doc_ids if d in self._position]
        return np.fromiter(found, dtype=np.int64, count=len(found))

    def top_documents(
        self, query: str, n: int, exclude: set[str], allowed: set[str] | frozenset[str] | None = None
    ) -> dict[str, tuple[float, int]]:
        """doc id -> (MAX chunk score, best chunk) for the ``n`` best documents with a query term.

        ``allowed`` (a metadata filter's documents) is applied before the top-``n`` cut. Deleted rows
        score 0, so deleted documents are never retrieved."""
        if self.index.num_rows == 0:
            return {}
        scores = self.index.score(query)
        doc_scores = np.maximum.reduceat(scores, self.doc_starts)
        if allowed is not None:
            keep = np.zeros(len(doc_scores), dtype=bool)
            keep[self.positions(allowed)] = True
            doc_scores = np.where(keep, doc_scores, 0.0)
        out: dict[str, tuple[float, int]] = {}
        for d in top_k(doc_scores, n):
            if doc_scores[d] <= 0:
                continue  # no query term: not retrieved
            doc_id = self.row_doc_ids[d]
            if doc_id in exclude:
                continue
            start = self.doc_starts[d]
            end = self.doc_starts[d + 1] if d + 1 < len(self.doc_starts) else len(scores)
            best_row = start + int(np.argmax(scores[start:end]))
            out[doc_id] = (float(doc_scores[d]), int(self.chunk_index[best_row]))
        return out


class LexicalViews:
    """Hands out the view of the catalog's current generation: cached (brought up to date with the
    catalog's changes), else loaded from disk (likewise), else built."""

    def __init__(self, name: str, directory: Path, catalog: Catalog, settings: BM25Settings) -> None:
        self.name = name
        self.directory = directory
        self.catalog = catalog
        self.settings = settings
        self.latest: LexicalView | None = None
        self.counts: Counter[str] = Counter()  # full_builds, loads, updates, merges: for tests and logs
        self._lock = threading.Lock()

    def current(self, db: sqlite3.Connection) -> LexicalView:
        """The view of the generation ``db`` (a catalog snapshot) sees, or of a newer one if already built.

        A search whose snapshot is older than the newest view (a write committed while it waited) uses
        that newer view: building its own older generation would throw the newer one away and make the
        next search build it again. Documents the snapshot does not see are dropped when hits are fetched.
        """
        generation = snapshot_generation(db)
        view = self.latest
        if view is not None and view.generation >= generation:
            return view
        with self._lock:  # one build or update, however many searches wait for it
            if self.latest is not None and self.latest.generation >= generation:
                return self.latest
            view = self.latest or self._load_newest()
            if view is None:
                view = self._build(db, generation)
            elif view.generation < generation:
                view = self._update(view, db, generation)
            self.latest = view
            return view

    def _build(self, db: sqlite3.Connection, generation: int) -> LexicalView:
        started = time.perf_counter()
        segment = read_segment(db, 0, self.settings)
        segments = [segment] if segment is not None else []
        view = self._view(generation, segments, [None] * len(segments), _max_seq(db, 0))
        self.counts["full_builds"] += 1
        self._persist(view, segments)
        log.info(
            "built BM25 for %s: %d rows in %.2fs",
            self.name,
            view.index.num_rows,
            time.perf_counter() - started,
        )
        return view

    def _update(self, view: LexicalView, db: sqlite3.Connection, generation: int) -> LexicalView:
        """``view`` brought to the catalog state of ``db``: new documents as a segment, gone ones masked."""
        started = time.perf_counter()
        cursor = db.execute("SELECT seq FROM documents WHERE seq <= ? ORDER BY seq", (view.max_seq,))
        present = np.fromiter((row[0] for row in cursor), dtype=np.int64)
        dead_docs: list[np.ndarray | None] = []
        deleted_rows = []
        for segment, dead, offset in zip(view.segments, view.dead_docs, view.index.offsets, strict=False):
            gone = ~np.isin(segment.doc_seqs, present, assume_unique=True)
            newly = gone if dead is None else gone & ~dead
            if newly.any():
                lengths = segment.doc_ends - segment.doc_starts
                row_doc = np.repeat(np.arange(len(lengths)), lengths)
                deleted_rows.append(np.flatnonzero(newly[row_doc]) + offset)
            dead_docs.append(gone if gone.any() else None)
        added = read_segment(db, view.max_seq, self.settings)
        rows = np.concatenate(deleted_rows) if deleted_rows else None
        index = view.index.with_changes(added.postings if added is not None else None, rows)
        segments = list(view.segments)
        if added is not None:
            segments.append(added)
            dead_docs.append(None)
        updated = LexicalView(generation, segments, dead_docs, _max_seq(db, view.max_seq), index)
        updated = self._maybe_merge(updated)
        self.counts["updates"] += 1
        self._persist(updated, [s for s in updated.segments if s not in view.segments])
        log.info(
            "updated BM25 for %s to generation %d (+%d rows, -%d rows) in %.3fs",
            self.name,
            generation,
            added.postings.num_rows if added is not None else 0,
            0 if rows is None else len(rows),
            time.perf_counter() - started,
        )
        return updated

    def _maybe_merge(self, view: LexicalView) -> LexicalView:
        segments = view.segments
        if not segments:
            return view
        index = view.index
        delta_rows = index.num_rows - segments[0].postings.num_rows
        if delta_rows > MERGE_FRACTION * segments[0].postings.num_rows or len(
            index.dead_rows
        ) > DEAD_FRACTION * max(1, index.num_rows):
            first = 0
        elif len(segments) > MAX_SEGMENTS:
            first = 1
        else:
            return view
        started = time.perf_counter()
        merged = _merge(segments[first:], view.dead_docs[first:], index.dead[first:])
        kept = segments[:first] + ([merged] if merged is not None else [])
        dead = view.dead_docs[:first] + [None] * (len(kept) - first)
        self.counts["merges"] += 1
        log.info(
            "merged %d BM25 segments of %s in %.2fs",
            len(segments) - first,
            self.name,
            time.perf_counter() - started,
        )
        return self._view(view.generation, kept, dead, view.max_seq)

    def _view(
        self, generation: int, segments: list[Segment], dead_docs: list[np.ndarray | None], max_seq: int
    ) -> LexicalView:
        """A view with its index computed from the segments and their deleted documents."""
        dead_rows = [None if d is None else _row_mask(s, d) for s, d in zip(segments, dead_docs, strict=True)]
        index = LexicalIndex(self.settings, [s.postings for s in segments], dead_rows)
        return LexicalView(generation, segments, dead_docs, max_seq, index)

    def _persist(self, view: LexicalView, new_segments: list[Segment]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for segment in new_segments:
            save_segment(segment, self.directory, self.settings)
        write_manifest(
            self.directory, view.generation, view.segments, view.dead_docs, view.max_seq, self.settings
        )
        clean(self.directory, view.generation)

    def _load_newest(self) -> LexicalView | None:
        """The newest manifest on disk that loads; an unreadable one is skipped (the next search brings an
        older one up to date from the catalog, or builds)."""
        if not self.directory.exists():
            return None
        for generation, path in manifests(self.directory):
            try:
                body = read_manifest(path, self.settings)
                segments = [load_segment(self.directory, s["name"], self.settings) for s in body["segments"]]
                dead = [_doc_mask(s, e["dead"]) for s, e in zip(segments, body["segments"], strict=True)]
                view = self._view(int(body["generation"]), segments, dead, int(body["max_seq"]))
            except CorruptIndex as exc:
                log.warning("%s; trying an older BM25 generation", exc)
                continue
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                log.warning("BM25 manifest %s is inconsistent (%s); trying an older one", path, exc)
                continue
            self.counts["loads"] += 1
            log.info("loaded BM25 generation %d of %s", generation, self.name)
            return view
        return None


def _merge(
    segments: list[Segment], dead_docs: list[np.ndarray | None], dead_rows: tuple[np.ndarray | None, ...]
) -> Segment | None:
    """The live documents of ``segments`` as one segment (None when none is live)."""
    postings = merge_postings([(s.postings, d) for s, d in zip(segments, dead_rows, strict=True)])
    ids: list[str] = []
    seqs: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    chunks: list[np.ndarray] = []
    for segment, dead in zip(segments, dead_docs, strict=True):
        live = np.ones(len(segment.doc_ids), bool) if dead is None else ~dead
        ids.extend(d for d, keep in zip(segment.doc_ids, live.tolist(), strict=True) if keep)
        seqs.append(segment.doc_seqs[live])
        lengths.append((segment.doc_ends - segment.doc_starts)[live])
        chunks.append(segment.chunk_index[~_row_mask(segment, ~live)])
    if not ids:
        return None
    counts = np.concatenate(lengths)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return Segment(new_name(), postings, ids, np.concatenate(seqs), starts, np.concatenate(chunks))


def _row_mask(segment: Segment, doc_mask: np.ndarray) -> np.ndarray:
    lengths = segment.doc_ends - segment.doc_starts
    return np.repeat(doc_mask, lengths)


def _doc_mask(segment: Segment, dead: list[int]) -> np.ndarray | None:
    if not dead:
        return None
    mask = np.zeros(len(segment.doc_ids), dtype=bool)
    mask[np.asarray(dead, dtype=np.int64)] = True
    return mask


def _max_seq(db: sqlite3.Connection, floor: int) -> int:
    return max(floor, int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM documents").fetchone()[0]))


def _concat(parts: list[np.ndarray], dtype: DTypeLike) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
