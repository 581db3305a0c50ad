"""The BM25 side of a collection: an index over every chunk of one catalog generation, with the row map
that rolls chunk scores up to documents (MAX). Built from the catalog, saved per generation, reloaded."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diver.catalog import Catalog
from diver.config import BM25Settings
from diver.errors import CorruptIndex
from diver.lexical import LexicalIndex, top_k

log = logging.getLogger(__name__)


@dataclass
class LexicalView:
    generation: int
    index: LexicalIndex
    doc_ids: list[str]
    doc_starts: np.ndarray  # first row of each document (rows of a document are contiguous)
    chunk_index: np.ndarray  # chunk number of each row
    _position: dict[str, int] | None = field(default=None, repr=False)  # doc id -> row of doc_ids, lazily

    @property
    def chunks_per_document(self) -> float:
        return len(self.chunk_index) / max(1, len(self.doc_ids))

    def positions(self, doc_ids: set[str] | frozenset[str]) -> np.ndarray:
        """Row numbers (in ``doc_ids`` order of this view) of the given documents that the view holds."""
        if self._position is None:
            self._position = {doc_id: i for i, doc_id in enumerate(self.doc_ids)}
        found = [self._position[d] for d in doc_ids if d in self._position]
        return np.fromiter(found, dtype=np.int64, count=len(found))

    def top_documents(
        self, query: str, n: int, exclude: set[str], allowed: set[str] | frozenset[str] | None = None
    ) -> dict[str, tuple[float, int]]:
        """doc id -> (MAX chunk score, best chunk) for the ``n`` best documents with a query term.

        ``allowed`` (a metadata filter's documents) is applied before the top-``n`` cut."""
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
            doc_id = self.doc_ids[d]
            if doc_id in exclude:
                continue
            start = self.doc_starts[d]
            end = self.doc_starts[d + 1] if d + 1 < len(self.doc_starts) else len(scores)
            best_row = start + int(np.argmax(scores[start:end]))
            out[doc_id] = (float(doc_scores[d]), int(self.chunk_index[best_row]))
        return out


class LexicalViews:
    """Hands out the view of the catalog's current generation: cached, else loaded from disk, else built."""

    def __init__(self, name: str, directory: Path, catalog: Catalog, settings: BM25Settings) -> None:
        self.name = name
        self.directory = directory
        self.catalog = catalog
        self.settings = settings
        self.latest: LexicalView | None = None
        self._lock = threading.Lock()

    def current(self, db: sqlite3.Connection) -> LexicalView:
        """The view of the generation ``db`` (a catalog snapshot) sees, or of a newer one if already built.

        A search whose snapshot is older than the newest view (a write committed while it waited) uses
        that newer view: building its own older generation would throw the newer one away and make the
        next search build it again. Documents the snapshot does not see are dropped when hits are fetched.
        """
        generation = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        view = self.latest
        if view is not None and view.generation >= generation:
            return view
        with self._lock:  # one build, however many searches wait for it
            if self.latest is not None and self.latest.generation >= generation:
                return self.latest
            directory = self.directory / f"gen-{generation}"
            view = None
            if directory.exists():
                try:
                    view = self._load(directory, generation)
                except CorruptIndex as exc:
                    log.warning("%s; rebuilding", exc)
            if view is None:
                view = self._build(db, generation, directory)
            self.latest = view
            return view

    def _build(self, db: sqlite3.Connection, generation: int, directory: Path) -> LexicalView:
        started = time.perf_counter()
        doc_ids: list[str] = []
        starts: list[int] = []
        chunk_index: list[int] = []

        def texts() -> Iterator[list[str]]:
            for rows in self.catalog.iter_chunks(db, batch=20000):
                for doc_id, idx, _ in rows:
                    if not doc_ids or doc_ids[-1] != doc_id:
                        doc_ids.append(doc_id)
                        starts.append(len(chunk_index))
                    chunk_index.append(idx)
                yield [text for _, _, text in rows]

        index = LexicalIndex.build_streaming(texts(), self.settings)
        view = LexicalView(
            generation, index, doc_ids, np.array(starts, np.int64), np.array(chunk_index, np.int32)
        )
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        index.save(tmp)
        (tmp / "rows.json").write_text(json.dumps({"doc_ids": doc_ids}), encoding="utf-8")
        np.save(tmp / "doc_starts.npy", view.doc_starts)
        np.save(tmp / "chunk_index.npy", view.chunk_index)
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)
        for old in directory.parent.glob("gen-*"):
            if old != directory and _generation_of(old) < generation:  # never a newer one
                shutil.rmtree(old, ignore_errors=True)
        log.info(
            "built BM25 for %s: %d rows in %.2fs", self.name, index.num_rows, time.perf_counter() - started
        )
        return view

    def _load(self, directory: Path, generation: int) -> LexicalView:
        index = LexicalIndex.load(directory, self.settings)
        try:
            doc_ids = json.loads((directory / "rows.json").read_text(encoding="utf-8"))["doc_ids"]
            return LexicalView(
                generation,
                index,
                doc_ids,
                np.load(directory / "doc_starts.npy"),
                np.load(directory / "chunk_index.npy"),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise CorruptIndex(f"BM25 row map at {directory} is unreadable: {exc}") from exc


def _generation_of(directory: Path) -> int:
    """N of ``gen-N`` or ``gen-N.tmp``; -1 for a name that is not one (removed as debris)."""
    number = directory.name.removeprefix("gen-").removesuffix(".tmp")
    return int(number) if number.isdigit() else -1
