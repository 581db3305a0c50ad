"""GPU probe of the pipelined indexer (issue 24): do the writes hide behind the encoder?

The write path is ``Collection.upsert``'s two stages (``diver.index.upserts.run_pipelined``): a worker
chunks (one Rust ``encode_batch`` per batch) and embeds on the GPU (``encode_pipelined``, fp16), the calling
thread writes. Where chromadb, bm25s and PyStemmer import, the real ``Collection.upsert`` runs; else (a bare
GPU machine without the project's dependencies) the writes are the real SQLite catalog
(``diver.index.catalog``: intent log, commit) plus the vectors appended to a float32 file and fsynced, and
the same batches run sequentially and pipelined in one process. Prints and returns docs/s for: embedding
alone, sequential, pipelined.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any


def _writer(directory: Path, dims: int) -> tuple[Any, Any]:
    from diver.index.catalog import Catalog

    catalog = Catalog(directory / "catalog.sqlite", create=True)
    handle = open(directory / "vectors.f32", "ab")  # noqa: SIM115 - closed by the caller

    def write(prepared: list[Any], vectors: Any) -> None:
        keys = [k for p in prepared for k in p.keys]
        catalog.log_pending(keys)
        handle.write(vectors.astype("float32").tobytes())
        handle.flush()
        os.fsync(handle.fileno())
        catalog.commit(prepared)

    return write, handle


def run(model: str, docs: int, batch_docs: int = 2048, device: str = "cuda") -> dict[str, Any]:
    from benchmarks.corpus import SyntheticCorpus
    from diver.config import EmbeddingSettings
    from diver.index.catalog import PreparedDocument
    from diver.index.dense.embedders import SentenceTransformerEmbedder
    from diver.index.upserts import run_pipelined
    from diver.text.documents import Document, chunk_document, content_hash

    embedder = SentenceTransformerEmbedder(
        EmbeddingSettings(model=model, device=device, batch_size=1024, cache=False, backend="torch")
    )
    corpus = SyntheticCorpus(docs, batch=docs)
    all_docs = [Document(id=f"d{i}", text=t) for i, t in enumerate(corpus.texts(0))]
    batches = [all_docs[s : s + batch_docs] for s in range(0, len(all_docs), batch_docs)]
    budget = embedder.chunk_token_budget()
    many = getattr(embedder.spanner, "token_spans_many", None)
    embed_s = {"s": 0.0}

    def prepare(batch: list[Document]) -> tuple[list[Any], Any]:
        spans = many([d.text for d in batch]) if many else [None] * len(batch)
        prepared = [
            PreparedDocument(d, content_hash(d), chunk_document(d, embedder.spanner, budget, 0.2, s))
            for d, s in zip(batch, spans, strict=True)
        ]
        started = time.perf_counter()
        vectors = embedder.embed_documents([c.text for p in prepared for c in p.chunks])
        embed_s["s"] += time.perf_counter() - started
        return prepared, vectors

    prepare(batches[0][:64])  # warm-up (CUDA context, kernels)
    out: dict[str, Any] = {"docs": docs, "batch_docs": batch_docs, "device": device}
    for mode in ("sequential", "pipelined"):
        embed_s["s"] = 0.0
        with tempfile.TemporaryDirectory() as tmp:
            write, handle = _writer(Path(tmp), embedder.dimensions)
            started = time.perf_counter()
            if mode == "sequential":
                for batch in batches:
                    write(*prepare(batch))
            else:
                run_pipelined(iter(batches), prepare, lambda item, w=write: w(*item))
            seconds = time.perf_counter() - started
            handle.close()
        out[mode] = {
            "seconds": round(seconds, 2),
            "docs_per_s": round(docs / seconds, 1),
            "embedding_docs_per_s": round(docs / embed_s["s"], 1),
            "ratio_to_embedding": round(embed_s["s"] / seconds, 3),
        }
        print(f"  {mode}: {out[mode]}", flush=True)
    return out
