"""1M chunks through the real collection path, measured (not extrapolated).

Synthetic documents (``benchmarks.corpus``: 100-300 words, real vocabulary) are upserted through
``Collection.upsert`` as a user's would be: chunking with MiniLM's tokenizer, the SQLite catalog, chroma
writes, then the BM25 build. Only the model is replaced: ``engine_bench.FakeEmbedder`` hands out the
embedding-shaped vectors of ``benchmarks.real_vectors`` (real MiniLM vectors of real text, perturbed
mixtures beyond ~25k). Then hybrid search (k=10) with real MiniLM query vectors (precomputed: the query
encoder's cost is measured in the collection section) and HNSW recall@10 against exact search over the
same vectors (streamed in blocks, never all in memory at once).
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import PeakRSS, latency_stats
from benchmarks.corpus import SyntheticCorpus
from benchmarks.engine_bench import FakeEmbedder, index_collection


def chunks_per_document(embedder: FakeEmbedder, sample: int = 400) -> float:
    """Chunks per synthetic document as the collection cuts them (its chunker and settings), from a sample."""
    from diver.config import load_settings
    from diver.text.documents import Document, chunk_document

    chunking = load_settings().chunking
    budget = chunking.max_tokens or embedder.chunk_token_budget()
    texts = SyntheticCorpus(sample, batch=sample).texts(0)
    counts = [
        len(chunk_document(Document(id=str(i), text=t), embedder.spanner, budget, chunking.overlap))
        for i, t in enumerate(texts)
    ]
    return float(np.mean(counts))


def exact_top10(query_vectors: np.ndarray, total: int, block: int = 100_000) -> np.ndarray:
    """Exact top-10 rows per query over rows 0..total of the vector sequence, in blocks."""
    from benchmarks.real_vectors import vector_rows

    best_scores = np.full((len(query_vectors), 10), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(query_vectors), 10), dtype=np.int64)
    for start in range(0, total, block):
        stop = min(total, start + block)
        scores = query_vectors @ vector_rows(start, stop).T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
        merged_rows = np.concatenate([best_rows, top + start], axis=1)
        keep = np.argsort(-merged_scores, axis=1)[:, :10]
        best_scores = np.take_along_axis(merged_scores, keep, 1)
        best_rows = np.take_along_axis(merged_rows, keep, 1)
    return best_rows


def _rows_of_keys(col: Any, embedder: FakeEmbedder, wanted: set[str]) -> dict[str, int]:
    """Vector rows of the given chunk keys (their texts hashed as the embedder did), streaming the catalog."""
    sql = (
        'SELECT c.key, substr(d.text, c.start + 1, c."end" - c.start) FROM chunks c '
        "JOIN documents d ON d.id = c.doc_id"
    )
    out: dict[str, int] = {}
    with col.catalog.snapshot() as db:
        for key, text in db.execute(sql):
            if key in wanted:
                out[key] = int(embedder.rows([text])[0])
    return out


def run(chunks: int = 1_000_000, queries: int = 100, workdir: Path | None = None) -> dict[str, Any]:
    from benchmarks.real_vectors import query_vectors
    from diver.config import load_settings
    from diver.index.engine import Engine

    embedder = FakeEmbedder()
    per_doc = chunks_per_document(embedder)
    documents = int(round(chunks / per_doc))
    corpus = SyntheticCorpus(documents)
    query_texts = corpus.queries(queries)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, PeakRSS() as rss:
        settings = load_settings(data_dir=Path(tmp), embedding={"cache": False}, llm={"cache": False})
        engine = Engine(settings, embedder=embedder)
        try:
            col = engine.collection("million", create=True)
            indexing = index_collection(col, corpus, embedder)
            gc.collect()
            col.search(query_texts[0], k=10)  # warm
            totals, parts = [], {}
            for text in query_texts:
                started = time.perf_counter()
                result = col.search(text, k=10, mode="hybrid")
                totals.append((time.perf_counter() - started) * 1000.0)
                for name, value in result.timings_ms.items():
                    parts.setdefault(name, []).append(value)
            hybrid = latency_stats(totals)
            qvec = query_vectors()[:queries]
            dense_lat, found = [], []
            for vector in qvec:
                started = time.perf_counter()
                found.append([key for key, _ in col.store.query(vector[None], 10)[0]])
                dense_lat.append((time.perf_counter() - started) * 1000.0)
            rows = _rows_of_keys(col, embedder, {k for keys in found for k in keys})
            exact = exact_top10(qvec, len(embedder._rows))
            recall = float(
                np.mean(
                    [
                        len({rows[k] for k in keys if k in rows} & set(e.tolist())) / 10
                        for keys, e in zip(found, exact, strict=True)
                    ]
                )
            )
            on_disk = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        finally:
            engine.close()
    return {
        "chunks_target": chunks,
        "documents": documents,
        "chunks_per_document_sample": round(per_doc, 3),
        "indexing": indexing,
        "hybrid": {**hybrid, "parts_p50_ms": {k: round(float(np.median(v)), 3) for k, v in parts.items()}},
        "store_query": {**latency_stats(dense_lat), "recall_at_10": round(recall, 4), "queries": len(qvec)},
        "peak_rss_mb": round(rss.peak_mb, 1),
        "disk_mb": round(on_disk / 2**20, 1),
    }
