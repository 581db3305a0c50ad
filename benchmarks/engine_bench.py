"""Sections 2-4 on a real collection: indexing (upsert path), end-to-end search, HNSW vs exact search.

The collection is filled through the real ``Collection.upsert`` path (chunking with MiniLM's tokenizer,
SQLite catalog, chroma HNSW writes, BM25 build) with a *fake* embedder that maps each text to a
deterministic clustered unit vector (hash -> cluster centre + noise), so a 100k-document index builds in
minutes on two cores. The real MiniLM is timed on a subsample to give the embedding share of indexing
time, and is swapped in for query embedding so end-to-end latency includes the real query encoder.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import PeakRSS, latency_stats, ratio, timed_each
from benchmarks.corpus import SyntheticCorpus
from benchmarks.cpu_embed_bench import _bright_queries
from diver.config import DEFAULT_EMBEDDING_MODEL, load_settings
from diver.text.documents import Document

DIM = 384


class FakeEmbedder:
    """MiniLM's id, size and tokenizer (so chunking is real), but no model: document vectors come from
    ``benchmarks.real_vectors`` (real MiniLM vectors of real text, perturbed mixtures of them beyond ~25k),
    handed out in the order chunks are first embedded and remembered by a hash of the text, so the same
    chunk gets the same vector again; query vectors are real MiniLM query vectors (TheoremQA questions)
    chosen by a hash of the query text. HNSW settings are then measured on embedding-shaped data, not on
    random vectors (the worst case for HNSW)."""

    def __init__(self) -> None:
        from transformers import AutoTokenizer

        from diver.index.dense.embedders import _HFSpanner, resolve_model_path
        from diver.index.dense.fast_tokenize import fast_spanner

        self.id = DEFAULT_EMBEDDING_MODEL
        self.dimensions = DIM
        self.max_seq_length = 256
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_EMBEDDING_MODEL))
        self.spanner = fast_spanner(self.tokenizer, _HFSpanner)  # what the real embedder chunks with
        self._rows: dict[int, int] = {}
        self.seconds = 0.0

    def chunk_token_budget(self) -> int:
        return self.max_seq_length - 2

    @staticmethod
    def _hash(text: str) -> int:
        return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")

    def rows(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's row in the vector sequence (new texts take the next rows)."""
        out = np.empty(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            key = self._hash(text)
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = len(self._rows)
            out[i] = row
        return out

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        from benchmarks.real_vectors import vector_rows

        rows = self.rows(texts)
        if not len(rows):
            return np.zeros((0, DIM), dtype=np.float32)
        low = int(rows.min())
        return vector_rows(low, int(rows.max()) + 1)[rows - low]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.vectors(texts)
        finally:
            self.seconds += time.perf_counter() - started

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        from benchmarks.real_vectors import query_vectors

        pool = query_vectors()
        return pool[[self._hash(t) % len(pool) for t in texts]]


class _Timed:
    """Wraps a callable and adds its wall time to ``seconds`` (benchmark-only instrumentation)."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def _documents(corpus: SyntheticCorpus) -> Iterator[Document]:
    for doc_id, text in corpus.documents():
        yield Document(id=doc_id, text=text)


def index_collection(col: Any, corpus: SyntheticCorpus, embedder: FakeEmbedder) -> dict[str, Any]:
    """Real upsert of the corpus (streamed), then the BM25 build; wall time split by part. Chunking (one batch
    tokenization + the windows) runs on the pipeline's worker thread beside the store writes and catalog commits
    of the batch before: its seconds are the worker's time in ``_prepare_batch`` less the embedder's, and the
    parts can add up to more than the wall time (``other_s`` < 0 is that overlap)."""
    import diver.index.collection as collection_module

    pipelined = collection_module.run_pipelined
    waits: list[float] = []
    collection_module.run_pipelined = lambda *a: waits.append(pipelined(*a))  # type: ignore[assignment, func-returns-value]
    prepare = _Timed(col._prepare_batch)
    store_write = _Timed(col.store.upsert)
    store_add = _Timed(col.store.add)  # the collection writes new chunk keys with add
    commit = _Timed(col.catalog.commit)
    col._prepare_batch, col.catalog.commit = prepare, commit
    col.store.upsert, col.store.add = store_write, store_add
    try:
        with PeakRSS() as rss:
            started = time.perf_counter()
            report = col.upsert(_documents(corpus), total=corpus.size)
            upsert_s = time.perf_counter() - started
            started = time.perf_counter()
            col.warm()  # BM25 is derived from the catalog: part of indexing
            bm25_s = time.perf_counter() - started
    finally:
        del col._prepare_batch, col.store.upsert, col.store.add, col.catalog.commit
        collection_module.run_pipelined = pipelined
    total = upsert_s + bm25_s
    parts = {
        "chunking_s": prepare.seconds - embedder.seconds,
        "fake_embedding_s": embedder.seconds,
        "chroma_write_s": store_write.seconds + store_add.seconds,
        "catalog_commit_s": commit.seconds,
        "bm25_build_s": bm25_s,
    }
    parts["other_s"] = total - sum(parts.values())
    return {
        "documents": report.added,
        "chunks": report.chunks,
        "seconds": round(total, 2),
        "docs_per_s_without_embedding": round(report.added / (total - embedder.seconds), 1),
        "split_s": {k: round(v, 2) for k, v in parts.items()},
        # the writer thread's waits for the worker (chunking + embedding of the next batch): what chunking adds
        # to the wall time when it runs beside the writes
        "waited_for_prepare_s": round(sum(waits), 2),
        "peak_rss_mb": round(rss.peak_mb, 1),
        "rss_delta_mb": round(rss.delta_mb, 1),
    }


def real_embedding_rate(texts: Sequence[str]) -> tuple[float, Any]:
    """Chunks/s of the real MiniLM on this machine's CPU (fp32, the configured batch size)."""
    from diver.config import EmbeddingSettings
    from diver.index.dense.embedders import SentenceTransformerEmbedder

    real = SentenceTransformerEmbedder(EmbeddingSettings(cache=False, device="cpu"))
    real.embed_documents(list(texts[:8]))  # warm
    started = time.perf_counter()
    real.embed_documents(list(texts))
    return len(texts) / (time.perf_counter() - started), real


def _chunk_texts(col: Any, limit: int | None = None) -> tuple[list[str], list[str]]:
    """(chunk keys, chunk texts) in catalog order, as they were embedded."""
    sql = (
        'SELECT c.key, substr(d.text, c.start + 1, c."end" - c.start) FROM chunks c '
        "JOIN documents d ON d.id = c.doc_id ORDER BY d.seq, c.idx"
    )
    if limit:
        sql += f" LIMIT {int(limit)}"
    with col.catalog.snapshot() as db:
        rows = db.execute(sql).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


def search_latency(col: Any, queries: Sequence[str]) -> dict[str, Any]:
    col.search(queries[0], k=10)  # warm caches
    parts: dict[str, list[float]] = {}
    totals = []
    for query in queries:
        started = time.perf_counter()
        result = col.search(query, k=10, mode="hybrid")
        totals.append((time.perf_counter() - started) * 1000.0)
        for name, value in result.timings_ms.items():
            parts.setdefault(name, []).append(value)
        parts.setdefault("glue", []).append(totals[-1] - sum(result.timings_ms.values()))
    return {
        "total": latency_stats(totals),
        "parts_p50_ms": {name: round(float(np.median(v)), 3) for name, v in parts.items()},
        "parts_mean_ms": {name: round(float(np.mean(v)), 3) for name, v in parts.items()},
    }


def dense_vs_exact(col: Any, embedder: FakeEmbedder, queries: Sequence[str]) -> dict[str, Any]:
    """chroma HNSW (our settings) vs exact numpy / torch search over the collection's own chunk vectors."""
    import torch

    keys, texts = _chunk_texts(col)
    matrix = embedder.vectors(texts)
    del texts
    qvec = embedder.embed_queries(queries)
    exact_lat, exact = timed_each(lambda q: np.argpartition(-(matrix @ q), 10)[:10], list(qvec))
    tmatrix = torch.from_numpy(matrix)
    torch_lat, _ = timed_each(lambda q: torch.topk(tmatrix @ torch.from_numpy(q), 10).indices, list(qvec))
    started = time.perf_counter()
    torch.topk(tmatrix @ torch.from_numpy(qvec[:100]).T, 10, dim=0)
    torch_batch_ms = (time.perf_counter() - started) * 1000.0 / min(100, len(qvec))
    col.store.query(qvec[:1], 10)
    hnsw_lat, hnsw = timed_each(lambda q: col.store.query(q[None], 10)[0], list(qvec))
    recall = np.mean(
        [len({k for k, _ in h} & {keys[i] for i in e}) / 10 for h, e in zip(hnsw, exact, strict=True)]
    )
    exact_stats, hnsw_stats = latency_stats(exact_lat), latency_stats(hnsw_lat)
    return {
        "vectors": len(keys),
        "queries": len(queries),
        "hnsw": {**hnsw_stats, "recall_at_10": round(float(recall), 4)},
        "exact_numpy": exact_stats,
        "exact_torch": latency_stats(torch_lat),
        "exact_torch_batch100_ms_per_query": round(torch_batch_ms, 3),
        "speedup_p50_hnsw_vs_numpy": ratio(exact_stats["p50_ms"], hnsw_stats["p50_ms"]),
    }


def run(
    size: int, queries: int, real_queries: int, real_sample_docs: int, workdir: Path | None = None
) -> dict:
    """Index ``size`` documents, then measure search (fake and real query embedding) and HNSW vs exact."""
    from diver.index.engine import Engine

    corpus = SyntheticCorpus(size)
    query_texts = corpus.queries(queries)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        settings = load_settings(data_dir=Path(tmp), embedding={"cache": False}, llm={"cache": False})
        embedder = FakeEmbedder()
        engine = Engine(settings, embedder=embedder)
        try:
            col = engine.collection("bench", create=True)
            indexing = index_collection(col, corpus, embedder)
            _, sample_texts = _chunk_texts(col, limit=max(16, int(real_sample_docs * 1.3)))
            rate, real = real_embedding_rate(sample_texts)
            non_embedding_s = indexing["seconds"] - indexing["split_s"]["fake_embedding_s"]
            estimated_embedding_s = indexing["chunks"] / rate
            indexing["real_minilm_cpu_chunks_per_s"] = round(rate, 1)
            indexing["real_minilm_sample_chunks"] = len(sample_texts)
            indexing["non_embedding_s"] = round(non_embedding_s, 2)
            indexing["estimated_real_embedding_s"] = round(estimated_embedding_s, 1)
            indexing["embedding_share_cpu"] = round(
                estimated_embedding_s / (estimated_embedding_s + non_embedding_s), 4
            )
            indexing["estimated_docs_per_s_real_cpu"] = round(
                indexing["documents"] / (estimated_embedding_s + non_embedding_s), 1
            )
            fake_search = search_latency(col, query_texts)
            dense = dense_vs_exact(col, embedder, query_texts)
            engine._embedder = real  # same id and size: the collection accepts it
            real_search = search_latency(col, query_texts[:real_queries])
            embed_lat, _ = timed_each(lambda q: real.embed_queries([q]), query_texts[:real_queries])
            bright = _bright_queries(48)  # BRIGHT's lengths (median ~84 words), each embedded once: cache off
            bright_search = search_latency(col, bright)
            bright_embed, _ = timed_each(lambda q: real.embed_queries([q]), bright)
        finally:
            engine.close()
    return {
        "size": size,
        "indexing": indexing,
        "search_fake_query_embedding": fake_search,
        "search_real_minilm": real_search,
        "minilm_query_embedding": latency_stats(embed_lat),
        "embedding_backend": real.backend_choice.summary(),
        "search_real_bright_queries": bright_search,
        "bright_query_embedding": latency_stats(bright_embed),
        "dense": dense,
    }
