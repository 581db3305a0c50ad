"""BM25 freshness after writes (issue 13): the next search after adding, then deleting, 100 documents.

A catalog is filled with the synthetic corpus (``benchmarks.corpus``), chunked by words (at most
``CHUNK_WORDS`` per chunk: 100k documents give about 170k chunks, the collection benchmark's 167k with
MiniLM's tokenizer, without spending minutes on tokenizing for chunks), and the collection's BM25
(``diver.index.lexical.view.LexicalViews``) is built. Then 100 documents are added and the next search is
timed cold (the catalog diff, tokenizing the new documents, the new statistics, writing the segment and
manifest, and the query), and its scores are compared with a full rebuild of the same catalog state
(max abs difference over every live chunk, top-10 equality); then 100 documents are deleted, likewise.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import latency_stats, ratio, timed_each
from benchmarks.corpus import SyntheticCorpus

CHUNK_WORDS = 160
CHANGED = 100


def _prepared(doc_id: str, text: str):  # noqa: ANN202 - a PreparedDocument
    from diver.index.catalog import PreparedDocument
    from diver.text.documents import Chunk, Document, content_hash

    words = text.split(" ")
    chunks, start = [], 0
    for i in range(0, max(1, len(words)), CHUNK_WORDS):
        piece = " ".join(words[i : i + CHUNK_WORDS])
        chunks.append(Chunk(doc_id, len(chunks), piece, start, start + len(piece)))
        start += len(piece) + 1
    doc = Document(id=doc_id, text=text)
    return PreparedDocument(doc, content_hash(doc), chunks)


def _chunk_scores(view: Any, queries: list[str]) -> dict[str, np.ndarray]:
    """(doc id, query) -> chunk scores of every live document, for comparing two views."""
    out = {}
    ends = np.append(view.doc_starts[1:], view.index.num_rows)
    live = view.doc_live.tolist()
    for q, query in enumerate(queries):
        scores = view.index.score(query)
        for d, doc_id in enumerate(view.row_doc_ids):
            if live[d]:
                out[f"{q}:{doc_id}"] = scores[view.doc_starts[d] : ends[d]]
    return out


def _step(views: Any, catalog: Any, root: Path, queries: list[str], name: str) -> dict[str, Any]:
    """Time the next search (cold), then compare with a full rebuild of the same catalog state."""
    from diver.index.lexical.view import LexicalViews

    started = time.perf_counter()
    with catalog.snapshot() as db:
        view = views.current(db)
        view.top_documents(queries[0], 10, set())
    next_search_s = time.perf_counter() - started
    latencies, tops = timed_each(lambda q: list(view.top_documents(q, 10, set())), queries)
    fresh = LexicalViews("fresh", root / f"fresh-{name}", catalog, views.settings)
    started = time.perf_counter()
    with catalog.snapshot() as db:
        rebuilt = fresh.current(db)
    rebuild_s = time.perf_counter() - started
    rebuilt_latencies, rebuilt_tops = timed_each(lambda q: list(rebuilt.top_documents(q, 10, set())), queries)
    mine, theirs = _chunk_scores(view, queries), _chunk_scores(rebuilt, queries)
    same_rows = mine.keys() == theirs.keys() and all(len(mine[k]) == len(theirs[k]) for k in theirs)
    diff = max((float(np.abs(mine[k] - theirs[k]).max(initial=0.0)) for k in theirs), default=0.0)
    return {
        "next_search_s": round(next_search_s, 3),
        "rebuild_s": round(rebuild_s, 2),
        "ratio_vs_rebuild": ratio(next_search_s, rebuild_s),
        "max_abs_diff": diff if same_rows else None,
        "top10_equal": tops == rebuilt_tops,
        "segments": len(view.segments),
        "query": latency_stats(latencies),
        "query_rebuilt": latency_stats(rebuilt_latencies),
    }


def run(size: int, queries: int = 30) -> dict[str, Any]:
    from diver.config import BM25Settings
    from diver.index.catalog import Catalog
    from diver.index.lexical.bm25 import warm_kernels
    from diver.index.lexical.view import LexicalViews

    warm_kernels()
    corpus = SyntheticCorpus(size)
    query_texts = corpus.queries(queries)
    extra = SyntheticCorpus(CHANGED, seed=14).texts(0)[:CHANGED]
    with tempfile.TemporaryDirectory(prefix="diver-bm25-update-") as tmp:
        root = Path(tmp)
        catalog = Catalog(root / "catalog.sqlite", create=True)
        try:
            started = time.perf_counter()
            batch: list = []
            for doc_id, text in corpus.documents():
                batch.append(_prepared(doc_id, text))
                if len(batch) == 5000:
                    catalog.commit(batch)
                    batch = []
            catalog.commit(batch)
            fill_s = time.perf_counter() - started
            views = LexicalViews("bench", root / "bm25", catalog, BM25Settings())
            started = time.perf_counter()
            with catalog.snapshot() as db:
                built = views.current(db)
            build_s = time.perf_counter() - started
            base_latencies, _ = timed_each(lambda q: built.top_documents(q, 10, set()), query_texts)
            catalog.commit([_prepared(f"new-{i:04d}", text) for i, text in enumerate(extra)])
            added = _step(views, catalog, root, query_texts, "add")
            rng = np.random.default_rng(7)
            gone = [corpus.doc_id(int(i)) for i in rng.choice(size, CHANGED, replace=False)]
            catalog.delete(gone)
            deleted = _step(views, catalog, root, query_texts, "delete")
        finally:
            catalog.close()
    result = {
        "size": size,
        "chunks": int(built.index.num_rows),
        "catalog_fill_s": round(fill_s, 1),
        "full_build_s": round(build_s, 2),
        "query_built": latency_stats(base_latencies),
        "add_100": added,
        "delete_100": deleted,
        "counts": dict(views.counts),
    }
    _print(result)
    return result


def _print(r: dict[str, Any]) -> None:
    print(f"bm25-update @ {r['size']} documents, {r['chunks']} chunks: full build {r['full_build_s']} s")
    print(
        f"{'step':<12}{'next search s':>15}{'rebuild s':>11}{'ratio':>8}{'max |diff|':>12}{'top10 =':>9}{'p50 ms':>9}"
    )
    for name in ("add_100", "delete_100"):
        s = r[name]
        print(
            f"{name:<12}{s['next_search_s']:>15}{s['rebuild_s']:>11}{s['ratio_vs_rebuild']!s:>8}"
            f"{s['max_abs_diff']!s:>12}{s['top10_equal']!s:>9}{s['query']['p50_ms']:>9}"
        )
    print(
        f"query p50 ms: built {r['query_built']['p50_ms']}, rebuilt {r['delete_100']['query_rebuilt']['p50_ms']}"
    )


if __name__ == "__main__":
    import sys

    run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
