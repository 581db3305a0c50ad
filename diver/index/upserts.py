"""One upsert call over many batches: batching, duplicate ids, the report, the progress bar and callback.

Shared by the in-process ``Collection.upsert`` and the engine client's ``RemoteCollection.upsert`` (which
sends each batch to the engine process), so both batch, count and report the same way.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from diver.hits import IndexReport
from diver.index.catalog import PreparedDocument
from diver.text.documents import Document

ProgressCallback = Callable[[int, int | None], None]
T = TypeVar("T")
U = TypeVar("U")


def document_batches(
    documents: Iterable[Document],
    size: int,
    max_bytes: int | None = None,
    measure: Callable[[Document], int] | None = None,
) -> Iterator[list[Document]]:
    """Batches of at most ``size`` documents and (when given) about ``max_bytes`` of text (or of
    ``measure(doc)``, e.g. its encoded size); a document larger than ``max_bytes`` travels alone."""
    batch: list[Document] = []
    used = 0
    for doc in documents:
        cost = measure(doc) if measure is not None else len(doc.text) + len(doc.id) + 64
        if batch and (len(batch) >= size or (max_bytes is not None and used + cost > max_bytes)):
            yield batch
            batch, used = [], 0
        batch.append(doc)
        used += cost
    if batch:
        yield batch


class UpsertRun:
    """The report of one upsert call, filled batch by batch, with its progress bar and callback."""

    def __init__(self, collection: str, total: int | None = None, progress: bool = False,
                 on_progress: ProgressCallback | None = None) -> None:  # fmt: skip
        self.report = IndexReport(collection=collection)
        self.total = total
        self._on_progress = on_progress
        self._seen: set[str] = set()
        self._bar = progress_bar(total, f"indexing {collection}") if progress else None
        self._started = time.perf_counter()

    def unique(self, batch: list[Document]) -> list[Document]:
        """The batch with one document per id (the last one wins), ids seen before in this call or twice in
        the batch recorded as duplicates."""
        by_id: dict[str, Document] = {}
        for doc in batch:
            if doc.id in self._seen or doc.id in by_id:
                self._duplicate(doc.id)
            by_id[doc.id] = doc
        self._seen.update(by_id)
        return list(by_id.values())

    def add(self, part: IndexReport) -> None:
        """Count a batch's own report in (what a remote engine reported for it)."""
        self.report.added += part.added
        self.report.replaced += part.replaced
        self.report.unchanged += part.unchanged
        self.report.chunks += part.chunks
        for doc_id in part.duplicate_ids:
            self._duplicate(doc_id)

    def advance(self, documents: int) -> None:
        """A batch of ``documents`` inputs is done: move the bar, tell the callback."""
        if self._bar is not None:
            self._bar.update(documents)
        if self._on_progress is not None:
            report = self.report
            self._on_progress(report.added + report.replaced + report.unchanged, self.total)

    def finish(self) -> IndexReport:
        self.close()
        self.report.seconds = round(time.perf_counter() - self._started, 3)
        return self.report

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _duplicate(self, doc_id: str) -> None:
        if doc_id not in self.report.duplicate_ids:
            self.report.duplicate_ids.append(doc_id)


def progress_bar(total: int | None, description: str, unit: str = "doc") -> Any:
    """A tqdm bar on stderr, shown only on a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, disable=not sys.stderr.isatty())


@dataclass
class BatchPlan:
    """One batch as planned on the calling thread: (document, content hash) to write, and how many inputs
    (documents given, duplicates and unchanged ones included) it stands for."""

    docs: list[tuple[Document, str]]
    inputs: int


@dataclass
class PreparedBatch:
    """A planned batch chunked and embedded: one vector row per chunk, in document order."""

    prepared: list[PreparedDocument]
    vectors: np.ndarray
    inputs: int


def run_pipelined(plans: Iterable[T], prepare: Callable[[T], U], commit: Callable[[U], None]) -> float:
    """A bounded two-stage pipeline: ``prepare`` (chunking, embedding) of batch n+1 runs on one worker thread
    while ``commit`` (store write, catalog commit) of batch n runs on the calling thread. Commits happen in
    batch order on the calling thread; at most two batches are prepared ahead of the one committing.
    Iterating ``plans`` (reading, parsing, the catalog's hash check) runs on the calling thread too, before
    the previous batch commits. Returns the seconds the calling thread waited for the worker (the time the
    preparation, not the writes, bounds)."""
    waited = 0.0

    def ready(future: Future[U]) -> U:
        nonlocal waited
        started = time.perf_counter()
        try:
            return future.result()
        finally:
            waited += time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="diver-prepare") as pool:
        pending: Future[U] | None = None
        try:
            for plan in plans:
                future = pool.submit(prepare, plan)
                if pending is not None:
                    commit(ready(pending))
                pending = future
            if pending is not None:
                done, pending = pending, None
                commit(ready(done))
        except BaseException:
            if pending is not None:
                pending.cancel()  # a queued batch is dropped; a running one finishes, then is discarded
            raise
    return waited
