"""The README's main job: index the TheoremQA theorems and answer a few BRIGHT reasoning queries."""

from __future__ import annotations

import time
from collections.abc import Callable

from diver.config import DiverSettings
from diver.engine import Engine


def run_demo(settings: DiverSettings, collection: str, n_queries: int, echo: Callable[[str], None]) -> None:
    from diver.benchmarks.theoremqa import build_theorems

    bench = build_theorems()
    with Engine(settings) as engine:
        echo(f"data directory: {settings.data_dir}")
        started = time.perf_counter()
        report = engine.collection(collection, create=True).upsert(
            bench.corpus, progress=True, total=bench.corpus.size
        )
        col = engine.collection(collection)
        echo(
            f"indexed {collection}: {report.added} added, {report.unchanged} already there, {report.chunks} chunks "
            f"embedded ({time.perf_counter() - started:.1f}s, embedder {engine.embedder.id})"
        )
        for qid, query in list(bench.queries.items())[:n_queries]:
            gold = next(iter(bench.qrels.get(qid, {})), "?")
            echo("")
            echo(f"query {qid}: {' '.join(query.split())[:300]}")
            echo(f"  relevant theorem: {gold}")
            for mode in ("bm25", "dense", "hybrid"):
                result = col.search(query, k=5, mode=mode)
                ranked = ", ".join(
                    f"{h.rank}. {h.title[:40]}{' *' if h.id == gold else ''}" for h in result.hits
                )
                echo(f"  {mode:>6}: {ranked}")
        echo("")
        echo('(* = the relevant theorem.) Next: `diver search <collection> "question" --json`, `diver eval`.')
