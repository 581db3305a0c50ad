"""Section "milvus": the Milvus backend (a real ``milvus-lite server`` on 127.0.0.1) vs the embedded default
(chroma + local catalog + BM25) in the same run, on the same synthetic corpus and the same embedder.

Both collections are filled through the real upsert path with ``engine_bench.FakeEmbedder`` (MiniLM's
tokenizer for chunking, real-shaped vectors, no model), so the figures are the storage and search path's:
index rate (documents/s, embedding excluded) and hybrid search latency (p50/p95 over the same queries,
query embedding included for both). ``python -m benchmarks.milvus_bench --docs 100000`` (~10 min on 2 cores).

milvus-lite is a single-process Python implementation of the Milvus protocol (for tests): its figures say
how DIVER's Milvus path behaves, not how fast a Milvus standalone or cluster is.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import latency_stats
from benchmarks.corpus import SyntheticCorpus
from benchmarks.engine_bench import FakeEmbedder, _documents
from diver.config import load_settings


def _milvus_server(root: Path) -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from milvus_support import MilvusLite

    return MilvusLite(root / "milvus").start()


def _measure(settings: Any, corpus: SyntheticCorpus, embedder: FakeEmbedder, queries: list[str]) -> dict[str, Any]:
    from diver.index.engine import Engine

    embedder.seconds = 0.0
    with Engine(settings, embedder=embedder) as engine:
        col = engine.collection("bench", create=True)
        started = time.perf_counter()
        report = col.upsert(_documents(corpus), total=corpus.size)
        col.warm()  # the embedded backend builds BM25 here: part of indexing
        seconds = time.perf_counter() - started
        col.search(queries[0], k=10)
        totals = []
        for query in queries:
            t = time.perf_counter()
            col.search(query, k=10, mode="hybrid")
            totals.append((time.perf_counter() - t) * 1000.0)
        top = [h.id for h in col.search(queries[0], k=10, mode="hybrid").hits]
    return {
        "documents": report.added,
        "chunks": report.chunks,
        "index_s": round(seconds, 2),
        "docs_per_s_without_embedding": round(report.added / max(1e-9, seconds - embedder.seconds), 1),
        "hybrid_ms": latency_stats(totals),
        "top10_first_query": top,
    }


def run(docs: int, n_queries: int = 50) -> dict[str, Any]:
    corpus = SyntheticCorpus(docs)
    queries = corpus.queries(n_queries)
    out: dict[str, Any] = {"documents": docs, "queries": n_queries, "server": "milvus-lite (pure Python, 127.0.0.1)"}
    with tempfile.TemporaryDirectory(prefix="diver-milvus-bench-") as tmp:
        root = Path(tmp)
        server = _milvus_server(root)
        try:
            base = {"embedding": {"provider": "hashing"}, "store": {"dense_search": "hnsw"}}
            embedded = load_settings(data_dir=root / "embedded", **base)
            milvus = load_settings(data_dir=root / "frontend", embedding={"provider": "hashing"},
                                   store={"backend": "milvus", "milvus_uri": server.uri, "milvus_timeout_s": 600})  # fmt: skip
            out["embedded"] = _measure(embedded, corpus, FakeEmbedder(), queries)
            out["milvus"] = _measure(milvus, corpus, FakeEmbedder(), queries)
        finally:
            server.stop()
    e, m = out["embedded"], out["milvus"]
    out["index_rate_ratio_milvus_vs_embedded"] = round(m["docs_per_s_without_embedding"] / e["docs_per_s_without_embedding"], 3)
    out["hybrid_p50_ratio_milvus_vs_embedded"] = round(m["hybrid_ms"]["p50_ms"] / e["hybrid_ms"]["p50_ms"], 3)
    overlap = len(set(e["top10_first_query"]) & set(m["top10_first_query"]))
    out["top10_overlap_first_query"] = overlap
    return out


def milvus_section(m: dict[str, Any] | None) -> list[str]:
    """The report's Milvus section: index rate and hybrid p50, Milvus vs embedded, same run."""
    if not m or "milvus" not in m:
        return [] if not m else ["", "## Milvus backend", "", f"failed: {m.get('error')}"]
    lines = ["", f"## Milvus backend vs embedded ({m['documents']:,} documents, {m['queries']} hybrid queries, "
             f"{m['server']}; scaled down from 100,000: see docs/scaling.md)", "",
             "| backend | docs/s indexed (embedding excluded) | hybrid p50 ms | p95 ms |", "|---|---|---|---|"]  # fmt: skip
    for name in ("embedded", "milvus"):
        b = m[name]
        lines.append(f"| {name} | {b['docs_per_s_without_embedding']} | {b['hybrid_ms']['p50_ms']} | {b['hybrid_ms']['p95_ms']} |")
    lines += ["", f"Ratios milvus / embedded: index rate {m['index_rate_ratio_milvus_vs_embedded']}, hybrid p50 "
              f"{m['hybrid_p50_ratio_milvus_vs_embedded']}; top-10 overlap on the first query "
              f"{m['top10_overlap_first_query']}/10."]  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.milvus_bench", description=__doc__)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.docs, args.queries), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
