"""Running one retrieval stage over a benchmark's queries, resumably."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from diver.config import DiverSettings
from diver.datasets import Benchmark

from .config import EvalConfig
from .trec import Checkpoint, Ranking

T = TypeVar("T")


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def progress(total: int | None, desc: str, enabled: bool, initial: int = 0, unit: str = "q") -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        initial=initial,
        file=sys.stderr,
        disable=not enabled,
        unit=unit,
        dynamic_ncols=True,
        leave=True,
    )


def retrieve(
    col: Any,
    bench: Benchmark,
    mode: str,
    config: EvalConfig,
    settings: DiverSettings,
    checkpoint: Checkpoint,
    notes: list[str],
) -> dict[str, Ranking]:
    """Rank every query with one engine mode; excluded ids go before the top-k cut. Resumes a checkpoint."""
    k = min(config.top_k, settings.limits.max_k)
    if k < config.top_k:
        notes.append(f"{mode}: k capped to limits.max_k={k} (asked {config.top_k})")
    done = checkpoint.load()
    todo = [q for q in bench.queries if q not in done]
    max_chars = settings.limits.max_query_chars
    with progress(len(bench.queries), f"{mode} {bench.domain}", config.progress, initial=len(done)) as bar:
        for batch in batches(todo, config.query_batch):
            texts = []
            for qid in batch:
                text = bench.queries[qid]
                if len(text) > max_chars:
                    notes.append(
                        f"{mode}: query {qid} cut from {len(text)} to limits.max_query_chars={max_chars}"
                    )
                    text = text[:max_chars]
                texts.append(text)
            excluded = [set(bench.excluded.get(q, set())) for q in batch]
            results = col.search_many(texts, k=k, mode=mode, exclude=excluded)
            rankings: dict[str, Ranking] = {}
            for qid, drop, result in zip(batch, excluded, results, strict=True):
                # The engine already drops excluded ids before its cut; filtering again guarantees the protocol.
                rankings[qid] = [(h.id, float(h.score)) for h in result.hits if h.id not in drop][
                    : config.top_k
                ]
            checkpoint.append(rankings)
            done.update(rankings)
            bar.update(len(batch))
    return {q: done[q] for q in bench.queries}
