"""One collection: idempotent upsert/delete that keep BM25 and dense consistent, and hybrid search."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from diver.errors import DocumentNotFound, EmbedderMismatch, InputError, StateError
from diver.fusion import combine_retrievers
from diver.hits import CollectionInfo, IndexReport, SearchHit, SearchMode, SearchResult
from diver.index.catalog import Catalog, PreparedDocument
from diver.index.dense.search import Allowed, DensePlanner
from diver.index.filters import compile_filter, source_of
from diver.index.host import CollectionHost
from diver.index.lexical.view import LexicalView, LexicalViews
from diver.index.moves import chunk_vectors, reusable_vectors
from diver.index.stores.base import VectorStore
from diver.index.upserts import (
    BatchPlan,
    PreparedBatch,
    ProgressCallback,
    UpsertRun,
    document_batches,
    run_pipelined,
)
from diver.text.citations import cite, public_metadata
from diver.text.documents import Document, check_limits, chunk_document, content_hash
from diver.text.queries import prepare_queries

log = logging.getLogger(__name__)
HIGHLIGHT_CHARS = 1000


class Collection:
    def __init__(
        self,
        engine: CollectionHost,
        name: str,
        directory: Path,
        meta: dict[str, Any],
        catalog: Catalog,
        store: VectorStore,
    ) -> None:
        self.engine = engine
        self.name = name
        self.directory = directory
        self.meta = meta
        self.catalog = catalog
        self.store = store
        self._write_lock = threading.Lock()
        self._dirty: dict[str, bool] | None = None  # the write call's dirty-flag state (``_write_call``)
        self.lexical = LexicalViews(name, directory / "bm25", catalog, engine.settings.bm25)
        self.dense = DensePlanner(engine.settings.store)  # exact below a size, else ANN; the exact matrix

    # -- info & reads -----------------------------------------------------------------------------
    def info(self) -> CollectionInfo:
        documents, chunks = self.catalog.counts()
        meta = self.meta
        return CollectionInfo(
            name=self.name,
            documents=documents,
            chunks=chunks,
            embedder=meta["embedder"],
            dimensions=meta["dimensions"],
            chunk_tokens=meta["chunk_tokens"],
            created_at=meta["created_at"],
        )

    def get(self, doc_id: str) -> Document:
        doc = self.catalog.get(doc_id)
        if doc is None:
            raise DocumentNotFound(self.name, doc_id)
        return doc

    def _embedder(self) -> Any:
        embedder = self.engine.embedder
        if embedder.dimensions != self.meta["dimensions"] or embedder.id != self.meta["embedder"]:
            raise EmbedderMismatch(
                f"collection {self.name!r} was built with {self.meta['embedder']} ({self.meta['dimensions']} dims) "
                f"but the configured embedder is {embedder.id} ({embedder.dimensions} dims); use that model or "
                "index into a new collection"
            )
        return embedder

    # -- writes -----------------------------------------------------------------------------------
    def upsert(
        self,
        documents: Iterable[Document],
        progress: bool = False,
        total: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> IndexReport:
        """Add or replace documents by id, in batches; each batch becomes visible atomically.

        Re-running the same call after a crash skips what was committed (unchanged content) and
        completes the rest. Duplicate ids within the call: the last one wins and is reported.
        """
        embedder = self._embedder()
        run = UpsertRun(self.name, total, progress, on_progress)
        size = self.engine.settings.store.write_batch_size
        try:
            with self._write_lock, self._write_call():
                self._reconcile()
                plans = self._plans(document_batches(documents, size), run)
                run_pipelined(
                    plans,
                    lambda plan: self._prepare_batch(plan, embedder),
                    lambda batch: self._commit(batch, run),
                )
        finally:
            run.close()
        return run.finish()

    def _plans(self, batches: Iterable[list[Document]], run: UpsertRun) -> Iterator[BatchPlan]:
        """Per batch (on the calling thread): the documents whose content differs from the catalog's. The
        batch before it may still be uncommitted: its ids are planned as changed and checked again when
        this batch commits."""
        in_flight: set[str] = set()
        limits = self.engine.settings.limits
        for batch in batches:
            for doc in batch:  # the limits hold whatever the entry point (Python API, engine, MCP)
                check_limits(doc, limits.max_document_bytes, limits.max_metadata_bytes)
            docs = run.unique(batch)
            existing = self.catalog.hashes([d.id for d in docs])
            todo = []
            for doc in docs:
                digest = content_hash(doc)
                if doc.id not in in_flight and existing.get(doc.id) == digest:
                    run.report.unchanged += 1
                else:
                    todo.append((doc, digest))
            in_flight = {d.id for d, _ in todo}
            yield BatchPlan(todo, len(batch))

    def _prepare(self, doc: Document, embedder: Any, digest: str | None = None,
                 spans: list[tuple[int, int]] | None = None) -> PreparedDocument:  # fmt: skip
        budget, overlap = int(self.meta["chunk_tokens"]), float(self.meta["chunk_overlap"])
        chunks = chunk_document(doc, embedder.spanner, budget, overlap, spans)
        return PreparedDocument(doc, digest or content_hash(doc), chunks)

    def _prepare_batch(self, plan: BatchPlan, embedder: Any) -> PreparedBatch:
        """Chunk and embed (the pipeline's worker thread): touches neither the catalog nor the store."""
        many = getattr(embedder.spanner, "token_spans_many", None)  # one batch call into the Rust tokenizer
        spans = many([doc.text for doc, _ in plan.docs]) if many else [None] * len(plan.docs)
        prepared = [
            self._prepare(doc, embedder, digest, doc_spans)
            for (doc, digest), doc_spans in zip(plan.docs, spans, strict=True)
        ]
        texts = [c.text for p in prepared for c in p.chunks]
        vectors = embedder.embed_documents(texts) if texts else np.zeros((0, self.meta["dimensions"]), np.float32)
        if vectors.shape != (len(texts), self.meta["dimensions"]):
            raise EmbedderMismatch(
                f"embedder returned {vectors.shape}, expected ({len(texts)}, {self.meta['dimensions']})"
            )
        return PreparedBatch(prepared, vectors, plan.inputs)

    def _commit(self, batch: PreparedBatch, run: UpsertRun) -> None:
        """Store write and catalog commit of one prepared batch (the calling thread, in batch order)."""
        existing = self.catalog.hashes([p.document.id for p in batch.prepared])
        keep: list[PreparedDocument] = []
        rows: list[int] = []
        start = 0
        for p in batch.prepared:
            if existing.get(p.document.id) == p.hash:  # committed by the batch before this one meanwhile
                run.report.unchanged += 1
            else:
                keep.append(p)
                rows.extend(range(start, start + len(p.keys)))
            start += len(p.keys)
        if keep:
            self._write_prepared(keep, batch.vectors[rows], run.report)
        run.advance(batch.inputs)

    def _write_prepared(self, prepared: list[PreparedDocument], vectors: np.ndarray, report: IndexReport,
                        remove: Sequence[str] = ()) -> None:  # fmt: skip
        keys = [k for p in prepared for k in p.keys]
        self.catalog.log_pending(keys)  # intent first: a crash after this leaves strays we can find
        with self._store_write():
            # ``add``, not ``upsert`` (cheaper where a backend has an insert path): a chunk key derives from the
            # document's id and content, and every stray key (a replaced document's, a crashed batch's) left
            # the store in ``_reconcile`` before this batch, so these keys are new to it.
            self.store.add(keys, vectors)
            added, replaced = self.catalog.commit(prepared, remove)
        report.added += added
        report.replaced += replaced
        report.chunks += len(keys)
        self._reconcile()

    def move(self, moves: Sequence[tuple[str, Document]]) -> IndexReport:
        """Replace each old id by a document with the same text under a new id (a renamed file), atomically
        per batch. The vectors of chunks whose span and text are unchanged are copied, not embedded again
        (``report.chunks`` counts only the embedded ones); an old id that is gone is a plain add."""
        embedder = self._embedder()
        run = UpsertRun(self.name, len(moves))
        try:
            with self._write_lock, self._write_call():
                self._reconcile()
                size = self.engine.settings.store.write_batch_size
                for start in range(0, len(moves), size):
                    self._move_batch(list(moves[start : start + size]), embedder, run.report)
                    run.advance(len(moves[start : start + size]))
        finally:
            run.close()
        return run.finish()

    def _move_batch(self, moves: list[tuple[str, Document]], embedder: Any, report: IndexReport) -> None:
        existing = self.catalog.hashes([doc.id for _, doc in moves])
        prepared, reuse = [], {}
        for old_id, doc in moves:
            item = self._prepare(doc, embedder)
            if existing.get(doc.id) == item.hash:  # moved already (a retried call): only the old id goes
                report.unchanged += 1
                continue
            prepared.append(item)
            reuse.update(reusable_vectors(self.catalog, self.store, old_id, item))
        if not prepared:
            self.catalog.delete([old_id for old_id, _ in moves])
            self._reconcile()
            return
        vectors = chunk_vectors(prepared, embedder, reuse, int(self.meta["dimensions"]))
        before = report.chunks
        self._write_prepared(prepared, vectors, report, [old_id for old_id, _ in moves])
        report.chunks = before + sum(1 for p in prepared for k in p.keys if k not in reuse)

    def folder_documents(self, root: str) -> dict[str, tuple[str, str | None]]:
        """Id -> (content hash, relative path) of the documents read from the folder ``root``."""
        return self.catalog.folder_documents(root)

    def delete(self, ids: Sequence[str]) -> int:
        with self._write_lock, self._write_call():
            deleted = self.catalog.delete(list(ids))  # vectors become strays: removed just below
            self._reconcile()
        return deleted

    @contextmanager
    def _write_call(self) -> Iterator[None]:
        """One write call (under the write lock). ``dirty`` is set before its first vector write and cleared
        when it ends, unless a vector write or its commit failed, or an earlier write left the flag set:
        then the next open rebuilds the dense index. A failure before any vector write (an embedding
        endpoint timeout) leaves the collection clean. Kept set across the call's batches because a backend
        with ``lazy_persistence`` (chroma's HNSW graph) can lose acknowledged vectors to a kill -9 after a
        committed batch. A backend whose writes are durable when acknowledged never sets it."""
        self._dirty = {"set": False, "keep": False}
        try:
            yield
        finally:
            state, self._dirty = self._dirty, None
            if state["set"] and not state["keep"]:
                self.catalog.set_meta("dirty", "0")

    @contextmanager
    def _store_write(self) -> Iterator[None]:
        """Around writing vectors to the store and the catalog commit that makes them consistent."""
        state = self._dirty
        if state is None:
            raise StateError("vector writes must run inside a write call")
        if not state["set"] and self.engine.backend.lazy_persistence:
            state["keep"] = self.catalog.get_meta("dirty") == "1"  # an earlier failure: left for the rebuild
            self.catalog.set_meta("dirty", "1")
            state["set"] = True
        try:
            yield
        except BaseException:
            state["keep"] = True
            raise

    def recover(self) -> None:
        """Remove what a killed write left behind (vectors of an uncommitted batch, stale ``pending``).

        Called when the collection is opened, so a read-only process after a crash neither keeps stray
        vectors in the ANN index (they would crowd out visible chunks) nor a stale intent log."""
        with self._write_lock:
            dirty = self.catalog.get_meta("dirty") == "1"
            with self._write_call():
                self._reconcile()
            if dirty:
                # A write was killed. A lazily persisted index (chroma's HNSW graph) can then lack vectors
                # that the store's own records hold (found by tests/reliability/test_crash_safety.py), so
                # the dense index is rebuilt from those stored vectors; the catalog decides what belongs.
                self.rebuild_dense()
                self.catalog.set_meta("dirty", "0")

    def rebuild_dense(self) -> None:
        """Copy every visible chunk's vector into a fresh store and switch to it atomically
        (``diver.index.dense.rebuild``)."""
        from diver.index.dense.rebuild import rebuild_dense

        rebuild_dense(self)

    def _reconcile(self) -> None:
        """Remove vectors that are not visible (replaced, deleted, or from a crashed batch)."""
        strays = self.catalog.stray_keys()
        if strays:
            with self._store_write():
                self.store.delete(strays)
                self.catalog.forget_strays(strays)

    def _lexical_view(self, db: sqlite3.Connection) -> LexicalView:
        return self.lexical.current(db)

    def warm(self) -> None:
        """Build or load the BM25 index (and the exact dense matrix, for a collection searched exactly) now,
        e.g. at server start-up, not on the first query."""
        with self.catalog.snapshot() as db:
            self.lexical.current(db)
            if self.dense.path(db) == "exact":
                self.dense.exact.matrix_for(db, self.store)

    # -- search -----------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        k: int = 10,
        mode: SearchMode = "hybrid",
        where: dict[str, Any] | None = None,
        source: str | None = None,
    ) -> SearchResult:
        return self.search_many([query], k=k, mode=mode, where=where, source=source)[0]

    # Over 60 lines: argument checks, then one snapshot in which filter, BM25, dense and fusion must run.
    def search_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        mode: SearchMode = "hybrid",
        exclude: Sequence[set[str]] | None = None,
        where: dict[str, Any] | None = None,
        source: str | None = None,
    ) -> list[SearchResult]:
        """Top-``k`` documents per query. ``where`` (a metadata filter, ``diver.index.filters``) and ``source`` (a
        path prefix) restrict the documents before the top-k cut, for BM25 and dense alike."""
        limits = self.engine.settings.limits
        notes: list[str] = []
        cleaned = prepare_queries(queries, limits.max_query_chars)
        if mode not in ("bm25", "dense", "hybrid"):
            raise InputError(f"mode must be one of bm25, dense, hybrid; got {mode!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise InputError(f"k must be a positive integer, got {k!r}")
        if k > limits.max_k:
            notes.append(f"k capped from {k} to {limits.max_k} (limits.max_k)")
            k = limits.max_k
        condition = compile_filter(where, source)
        exclude = exclude or [set() for _ in queries]
        fusion = self.engine.settings.fusion
        pool = max(k, fusion.candidates) if mode == "hybrid" else k
        timings: dict[str, float] = {}
        with self.catalog.snapshot() as db:
            allowed = None
            if condition is not None:
                t = time.perf_counter()
                doc_ids, chunk_count = self.catalog.allowed(db, condition)
                allowed = Allowed(frozenset(doc_ids), chunk_count, condition)
                timings["filter"] = _ms(t)
                notes.append(f"filter matched {len(doc_ids)} documents")
            lexical = dense = None
            dense_path: list[str] = []
            if mode in ("bm25", "hybrid"):
                t = time.perf_counter()
                view = self._lexical_view(db)
                ids = allowed.doc_ids if allowed is not None else None
                lexical = [
                    view.top_documents(q, pool + len(ex), ex, ids) for q, ex in zip(cleaned, exclude, strict=True)
                ]
                timings["bm25"] = _ms(t)
            if mode in ("dense", "hybrid"):
                dense = self._dense_top(db, cleaned, pool, exclude, allowed, timings, dense_path)
            t = time.perf_counter()
            results = []
            for i, query in enumerate(queries):
                ranked, per_retriever = combine_retrievers(
                    mode, lexical[i] if lexical else None, dense[i] if dense else None, fusion, k
                )
                hits = self._hits(db, ranked, per_retriever)
                results.append(
                    SearchResult(
                        collection=self.name, query=query, mode=mode, k=k, hits=hits, notes=list(notes),
                        dense_path=dense_path[0] if dense_path else None,
                        query_prompt=self._query_prompt_source() if dense else None,
                    )
                )
            timings["fuse_fetch"] = _ms(t)
        for result in results:
            result.timings_ms = {name: round(v / len(queries), 3) for name, v in timings.items()}
        return results

    def _query_prompt_source(self) -> str:
        prompts = getattr(self._embedder(), "prompts", None)
        return str(prompts.query_source) if prompts is not None else "none"

    def _dense_top(
        self,
        db: sqlite3.Connection,
        queries: Sequence[str],
        pool: int,
        exclude: Sequence[set[str]],
        allowed: Allowed | None,
        timings: dict[str, float],
        path: list[str],
    ) -> list[dict[str, tuple[float, int]]]:
        t = time.perf_counter()
        vectors = self._embedder().embed_queries(list(queries))
        timings["embed"] = _ms(t)
        t = time.perf_counter()
        view = self.lexical.latest  # chunks per document: the first guess of how many chunks to ask for
        per_doc = view.chunks_per_document if view is not None else 2.0
        out, taken = self.dense.search(self.store, self.catalog, db, vectors, pool, exclude, allowed, per_doc)
        timings["dense"] = _ms(t)
        path.append(taken)
        return out

    def chunk_window(self, doc_id: str, around_chunk: int, window: int = 1) -> list[tuple[int, int, int, str]]:
        """(index, start, end, text) of chunks ``around_chunk - window .. around_chunk + window`` of a document:
        the part of a long document around a hit, for reading it without reading all of it."""
        count = self.catalog.chunk_count(doc_id)
        if count is None:
            raise DocumentNotFound(self.name, doc_id)
        if isinstance(around_chunk, bool) or not isinstance(around_chunk, int) or not 0 <= around_chunk < count:
            raise InputError(f"around_chunk must be 0..{count - 1} for {doc_id!r}, got {around_chunk!r}")
        if isinstance(window, bool) or not isinstance(window, int) or not 0 <= window <= 50:
            raise InputError(f"window must be 0..50, got {window!r}")
        return self.catalog.chunk_rows(doc_id, max(0, around_chunk - window), around_chunk + window)

    def chunk_count(self, doc_id: str) -> int:
        count = self.catalog.chunk_count(doc_id)
        if count is None:
            raise DocumentNotFound(self.name, doc_id)
        return count

    def _hits(
        self,
        db: sqlite3.Connection,
        ranked: list[tuple[str, float]],
        per_retriever: dict[str, dict[str, tuple[float, int]]],
    ) -> list[SearchHit]:
        ids = [doc_id for doc_id, _ in ranked]
        texts = self.catalog.documents(db, ids)
        best = {}
        for doc_id in ids:
            for name in ("dense", "bm25"):
                if doc_id in per_retriever.get(name, {}):
                    best[doc_id] = per_retriever[name][doc_id][1]
                    break
        spans = self.catalog.chunk_spans(db, list(best.items()))
        hits = []
        for rank, (doc_id, score) in enumerate(ranked, start=1):
            if doc_id not in texts:
                continue  # deleted between retrieval and fetch: never show a half-visible document
            text, metadata = texts[doc_id]
            chunk = best.get(doc_id, 0)
            start, end = spans.get((doc_id, chunk), (0, len(text)))
            where = cite(text, metadata, start, end)
            metadata = public_metadata(metadata)
            hits.append(
                SearchHit(
                    id=doc_id,
                    rank=rank,
                    score=round(float(score), 6),
                    title=_title(text),
                    highlight=text[start:end][:HIGHLIGHT_CHARS],
                    metadata=metadata,
                    scores={name: round(v[doc_id][0], 6) for name, v in per_retriever.items() if doc_id in v},
                    source=source_of(metadata),
                    chunk=chunk,
                    span=(start, min(end, start + HIGHLIGHT_CHARS)),
                    lines=where.lines,
                    page=where.page,
                    heading=where.heading,
                )
            )
        return hits

    def close(self) -> None:
        self.catalog.close()


def _title(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:120]
    return ""


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
