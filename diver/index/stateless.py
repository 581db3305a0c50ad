"""A collection whose documents, vectors and BM25 live in a document store (``store.backend = "milvus"``).

The same public surface as ``diver.index.collection.Collection`` (upsert, delete, search, search_many, get,
chunk_window, chunk_count, info), but the process keeps nothing another frontend needs: no catalog, no
BM25 index, no vectors. The ranking semantics are DIVER's: the store returns the BM25 top-N and the
dense top-N *chunks*, the chunks roll up to documents by MAX (``rollup_max``) and ``diver.fusion`` fuses
the two lists with the configured method and weight. BM25 terms are DIVER's own tokens (the BM25
tokenizer's, sent as text to the store's BM25 function), so the analyzer does not change with the server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from diver.errors import ConfigError, DocumentNotFound, EmbedderMismatch, InputError, StateError
from diver.fusion import combine_retrievers
from diver.hits import CollectionInfo, IndexReport, SearchHit, SearchMode, SearchResult
from diver.index.filters import source_of
from diver.index.host import CollectionHost
from diver.index.lexical.bm25 import BM25Tokenizer
from diver.index.stores.documents import ChunkHit, DocumentRows, DocumentStore, RowDocument, Snapshot
from diver.index.upserts import ProgressCallback, UpsertRun, document_batches
from diver.text.documents import ChunkScore, Document, chunk_document, content_hash, rollup_max
from diver.text.queries import prepare_queries

GROWTH = 4  # each re-ask multiplies the chunk budget by this
HIGHLIGHT_CHARS = 1000
DocHits = dict[str, tuple[float, int]]


def new_meta(engine: CollectionHost, name: str) -> dict[str, Any]:
    """What a new collection records: embedder, chunking and the BM25 tokenizer (terms are made here)."""
    embedder = engine.embedder
    settings = engine.settings
    return {
        "name": name,
        "embedder": embedder.id,
        "dimensions": embedder.dimensions,
        "chunk_tokens": settings.chunking.max_tokens or embedder.chunk_token_budget(),
        "chunk_overlap": settings.chunking.overlap,
        "query_prefix": settings.embedding.query_prefix,
        "document_prefix": settings.embedding.document_prefix,
        "bm25": _bm25_meta(engine),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _bm25_meta(engine: CollectionHost) -> dict[str, Any]:
    bm25 = engine.settings.bm25
    return {"k1": bm25.k1, "b": bm25.b, "stemmer": bm25.stemmer, "stopwords": bm25.stopwords}


def open_stateless(
    engine: CollectionHost, store: DocumentStore, name: str, create: bool, rows: DocumentRows | None
) -> StatelessCollection | None:
    """The collection ``name`` of the document store (``rows``: as just opened; made when absent and
    ``create``); None when absent."""
    if rows is None:
        if not create:
            return None
        rows = store.create(name, new_meta(engine, name))
    return StatelessCollection(engine, rows)


class StatelessCollection:
    def __init__(self, engine: CollectionHost, rows: DocumentRows) -> None:
        self.engine = engine
        self.rows = rows
        self.name = rows.name
        stored, wanted = rows.meta.get("bm25") or {}, _bm25_meta(engine)
        if (stored.get("stemmer"), stored.get("stopwords")) != (wanted["stemmer"], wanted["stopwords"]):
            raise ConfigError(
                f"collection {self.name!r} was indexed with the BM25 tokenizer stemmer={stored.get('stemmer')!r} "
                f"stopwords={stored.get('stopwords')!r}; bm25.stemmer / bm25.stopwords are {wanted['stemmer']!r} / "
                f"{wanted['stopwords']!r}: set them to the collection's or index into a new collection"
            )
        self.tokenizer = BM25Tokenizer(engine.settings.bm25)
        self._write_lock = threading.Lock()
        self._shape: tuple[int, float] | None = None  # (watermark, chunks per document)

    @property
    def meta(self) -> dict[str, Any]:
        return self.rows.meta

    # -- reads ------------------------------------------------------------------------------------
    def info(self) -> CollectionInfo:
        documents, chunks = self.rows.counts(self.rows.snapshot())
        meta = self.meta
        return CollectionInfo(name=self.name, documents=documents, chunks=chunks, embedder=meta["embedder"],
                              dimensions=meta["dimensions"], chunk_tokens=meta["chunk_tokens"],
                              created_at=meta["created_at"])  # fmt: skip

    def get(self, doc_id: str) -> Document:
        found = self.rows.documents([doc_id], self.rows.snapshot()).get(doc_id)
        if found is None:
            raise DocumentNotFound(self.name, doc_id)
        return found.document

    def chunk_count(self, doc_id: str) -> int:
        count = self.rows.chunk_count(doc_id, self.rows.snapshot())
        if count is None:
            raise DocumentNotFound(self.name, doc_id)
        return count

    def chunk_window(self, doc_id: str, around_chunk: int, window: int = 1) -> list[tuple[int, int, int, str]]:
        snap = self.rows.snapshot()
        count = self.rows.chunk_count(doc_id, snap)
        if count is None:
            raise DocumentNotFound(self.name, doc_id)
        if isinstance(around_chunk, bool) or not isinstance(around_chunk, int) or not 0 <= around_chunk < count:
            raise InputError(f"around_chunk must be 0..{count - 1} for {doc_id!r}, got {around_chunk!r}")
        if isinstance(window, bool) or not isinstance(window, int) or not 0 <= window <= 50:
            raise InputError(f"window must be 0..50, got {window!r}")
        return self.rows.chunk_rows(doc_id, max(0, around_chunk - window), around_chunk + window, snap)

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
    def upsert(self, documents: Iterable[Document], progress: bool = False, total: int | None = None,
               on_progress: ProgressCallback | None = None) -> IndexReport:  # fmt: skip
        """Add or replace documents by id, in batches; each batch becomes visible to every frontend at once
        (its commit). Unchanged documents (same content hash) write nothing; a rerun after a crash removes
        the crashed batch's rows and completes the rest."""
        embedder = self._embedder()
        run = UpsertRun(self.name, total, progress, on_progress)
        try:
            with self._write_lock:
                self.rows.reconcile()
                for batch in document_batches(documents, self.engine.settings.store.write_batch_size):
                    self._write_batch(run.unique(batch), embedder, run.report)
                    run.advance(len(batch))
                self.rows.flush_if_due()
        finally:
            run.close()
        return run.finish()

    def _write_batch(self, docs: list[Document], embedder: Any, report: IndexReport) -> None:
        snap = self.rows.snapshot(fresh=True)
        existing = self.rows.hashes([d.id for d in docs], snap)
        budget, overlap = int(self.meta["chunk_tokens"]), float(self.meta["chunk_overlap"])
        prepared: list[RowDocument] = []
        for doc in docs:
            digest = content_hash(doc)
            if existing.get(doc.id) == digest:
                report.unchanged += 1
                continue
            chunks = chunk_document(doc, embedder.spanner, budget, overlap)
            lexical = [" ".join(tokens) for tokens in self.tokenizer.tokenize([c.text for c in chunks])]
            prepared.append(RowDocument(doc, digest, chunks, lexical))
        if not prepared:
            return
        vectors = embedder.embed_documents([c.text for p in prepared for c in p.chunks])
        n_chunks = sum(len(p.chunks) for p in prepared)
        if vectors.shape != (n_chunks, self.meta["dimensions"]):
            raise EmbedderMismatch(f"embedder returned {vectors.shape}, expected ({n_chunks}, {self.meta['dimensions']})")
        generation = snap.watermark + 1
        self.rows.write(prepared, vectors, generation)  # invisible: above the watermark
        replaced = [p.document.id for p in prepared if p.document.id in existing]
        self.rows.commit(generation, replaced)  # the batch becomes visible here, all of it
        self.rows.reconcile()  # the replaced documents' older rows
        report.added += len(prepared) - len(replaced)
        report.replaced += len(replaced)
        report.chunks += n_chunks

    def delete(self, ids: Sequence[str]) -> int:
        with self._write_lock:
            self.rows.reconcile()
            return self.rows.delete_documents(list(ids))

    def recover(self) -> None:
        """Nothing to do on open: a crashed batch's rows are above the watermark (invisible) and are removed
        by the next write call, which is the only one allowed to (another frontend may be writing now)."""

    def rebuild_dense(self) -> None:
        raise StateError(f"collection {self.name!r} is in Milvus: its dense index is Milvus' own (no rebuild)")

    def warm(self) -> None:
        self.rows.snapshot()  # reach the server once at start-up

    def close(self) -> None:
        """Nothing is held locally."""

    # -- search -----------------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, mode: SearchMode = "hybrid", where: dict[str, Any] | None = None,
               source: str | None = None) -> SearchResult:  # fmt: skip
        return self.search_many([query], k=k, mode=mode, where=where, source=source)[0]

    def search_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        mode: SearchMode = "hybrid",
        exclude: Sequence[set[str]] | None = None,
        where: dict[str, Any] | None = None,
        source: str | None = None,
    ) -> list[SearchResult]:
        """Top-``k`` documents per query; ``where`` / ``source`` are Milvus filters applied before the top-N."""
        cleaned, k, notes = self._check(queries, k, mode)
        snap = self.rows.snapshot(where, source)
        if where is not None or source is not None:
            notes.append(f"filter matched {self.rows.counts(snap)[0]} documents")
        exclude = exclude or [set() for _ in queries]
        fusion = self.engine.settings.fusion
        pool = max(k, fusion.candidates) if mode == "hybrid" else k
        timings: dict[str, float] = {}
        per_doc = self._chunks_per_document(snap)
        lexical = dense = None
        if mode in ("bm25", "hybrid"):
            t = time.perf_counter()
            texts = [" ".join(tokens) for tokens in self.tokenizer.tokenize(list(cleaned))]
            fetch_lexical: Fetch = lambda idx, n: self.rows.lexical_top([texts[i] for i in idx], n, snap)  # noqa: E731
            lexical = self._documents(fetch_lexical, len(texts), pool, exclude, per_doc, positive=True)
            timings["bm25"] = _ms(t)
        if mode in ("dense", "hybrid"):
            t = time.perf_counter()
            vectors = self._embedder().embed_queries(list(cleaned))
            timings["embed"] = _ms(t)
            t = time.perf_counter()
            fetch_dense: Fetch = lambda idx, n: self.rows.dense_top(vectors[idx], n, snap)  # noqa: E731
            dense = self._documents(fetch_dense, len(vectors), pool, exclude, per_doc)
            timings["dense"] = _ms(t)
        t = time.perf_counter()
        fused = [combine_retrievers(mode, lexical[i] if lexical else None, dense[i] if dense else None, fusion, k)
                 for i in range(len(queries))]  # fmt: skip
        stored = self.rows.documents(sorted({d for ranked, _ in fused for d, _ in ranked}), snap)
        results = [
            SearchResult(collection=self.name, query=query, mode=mode, k=k, hits=_hits(ranked, per, stored),
                         notes=list(notes), dense_path="milvus" if dense else None)
            for query, (ranked, per) in zip(queries, fused, strict=True)
        ]  # fmt: skip
        timings["fuse_fetch"] = _ms(t)
        for result in results:
            result.timings_ms = {name: round(v / len(queries), 3) for name, v in timings.items()}
        return results

    def _check(self, queries: Sequence[str], k: int, mode: str) -> tuple[list[str], int, list[str]]:
        limits = self.engine.settings.limits
        cleaned = prepare_queries(queries, limits.max_query_chars)
        if mode not in ("bm25", "dense", "hybrid"):
            raise InputError(f"mode must be one of bm25, dense, hybrid; got {mode!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise InputError(f"k must be a positive integer, got {k!r}")
        notes = []
        if k > limits.max_k:
            notes.append(f"k capped from {k} to {limits.max_k} (limits.max_k)")
            k = limits.max_k
        return list(cleaned), k, notes

    def _chunks_per_document(self, snap: Snapshot) -> float:
        """Chunks per visible document (the first guess of how many chunks make enough documents), counted
        once per committed generation."""
        shape = self._shape
        if shape is None or shape[0] != snap.watermark:
            docs, chunks = self.rows.counts(self.rows.snapshot())
            self._shape = shape = (snap.watermark, chunks / docs if docs else 1.0)
        return shape[1]

    def _documents(self, fetch: Fetch, n_queries: int, want: int, exclude: Sequence[set[str]], per_doc: float,
                   positive: bool = False) -> list[DocHits]:  # fmt: skip
        """The ``want`` best documents per query by MAX chunk score, asking for 4x more chunks until enough
        distinct documents are found or the store has no more."""
        out: list[DocHits] = [{} for _ in range(n_queries)]
        widest = max((len(ex) for ex in exclude), default=0)
        n = int((want + widest) * max(1.0, per_doc)) + 10
        pending = list(range(n_queries))
        while pending:
            n = min(n, self.rows.max_results)
            raw = fetch(pending, n)
            still = []
            for i, row in zip(pending, raw, strict=True):
                docs = _roll_up(row, exclude[i], positive)
                out[i] = {d.doc_id: (d.score, d.best_chunk) for d in docs[:want]}
                if len(docs) < want and len(row) >= n and n < self.rows.max_results:
                    still.append(i)
            pending = still
            n *= GROWTH
        return out


Fetch = Callable[[list[int], int], list[list[ChunkHit]]]


def _roll_up(row: Sequence[ChunkHit], exclude: set[str], positive: bool) -> list[Any]:
    """Chunk hits -> documents by MAX, each document's newest generation only (a replaced version's rows
    linger until the writer removes them); ``positive``: no zero scores (BM25: no query term)."""
    newest: dict[str, int] = {}
    for doc_id, _, _, gen in row:
        newest[doc_id] = max(gen, newest.get(doc_id, gen))
    return rollup_max(
        ChunkScore(doc_id, idx, score)
        for doc_id, idx, score, gen in row
        if gen == newest[doc_id] and doc_id not in exclude and (score > 0 or not positive)
    )


def _hits(ranked: list[tuple[str, float]], per_retriever: dict[str, DocHits], stored: dict[str, Any]) -> list[SearchHit]:
    hits = []
    for rank, (doc_id, score) in enumerate(ranked, start=1):
        found = stored.get(doc_id)
        if found is None:
            continue  # deleted between retrieval and fetch: never show a half-visible document
        chunk = next((per_retriever[n][doc_id][1] for n in ("dense", "bm25") if doc_id in per_retriever.get(n, {})), 0)
        text, metadata = found.document.text, found.document.metadata
        start, end = found.spans.get(chunk, (0, len(text)))
        hits.append(SearchHit(
            id=doc_id, rank=rank, score=round(float(score), 6), title=_title(text),
            highlight=text[start:end][:HIGHLIGHT_CHARS], metadata=metadata,
            scores={name: round(v[doc_id][0], 6) for name, v in per_retriever.items() if doc_id in v},
            source=source_of(metadata), chunk=chunk, span=(start, min(end, start + HIGHLIGHT_CHARS)),
        ))  # fmt: skip
    return hits


def _title(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:120]
    return ""


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


__all__ = ["StatelessCollection", "new_meta", "open_stateless"]
