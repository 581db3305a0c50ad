"""Measure the query-assembly variants with replayed expansions: nDCG@10 per variant and retrieval mode,
on the queries that have expansions (and the original queries as the baseline).

    python -m diver.evals.assembly -b theoremqa-theorems-offline -e tests/data/agent_expansions_theorems.jsonl

Expansions file: one ``{"id": <query id>, "expansions": ["...", ...]}`` per line (``"expansion": "..."``
is accepted too). The collection is the one ``diver eval`` builds for the benchmark (reused when there).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from diver.config import load_settings
from diver.datasets.metrics import evaluate_run
from diver.errors import InputError
from diver.stages.assembly_plan import VARIANTS
from diver.stages.assembly_search import AssemblyTarget, search_assembled
from diver.text.jsonl import read_jsonl

from .config import EvalConfig
from .loading import ensure_collection, load_benchmarks

MODES = ("bm25", "dense", "hybrid")


def read_expansions(path: Path) -> dict[str, list[str]]:
    """Query id -> expansions, from a jsonl file."""
    if not path.is_file():
        raise InputError(f"--expansions: no file {path}")
    found: dict[str, list[str]] = {}
    for number, row in read_jsonl(path):
        texts = row.get("expansions", [row["expansion"]] if "expansion" in row else None)
        if not isinstance(row.get("id"), str) or not isinstance(texts, list):
            raise InputError(f'{path}:{number}: expected {{"id": ..., "expansions": [...]}}')
        found[row["id"]] = [str(t) for t in texts]
    return found


def measure(benchmark: str, expansions_path: Path, variants: tuple[str, ...] = VARIANTS,
            modes: tuple[str, ...] = MODES, k: int = 100, engine: Any = None) -> dict[str, Any]:  # fmt: skip
    """{"queries": n, "ndcg10": {mode: {variant: value}}} over the queries that have expansions."""
    settings = load_settings() if engine is None else engine.settings
    config = EvalConfig(benchmark=benchmark, progress=False)
    bench = load_benchmarks(config)[0]
    expansions = read_expansions(expansions_path)
    ids = [q for q in bench.queries if q in expansions and bench.qrels.get(q)]
    if not ids:
        raise InputError(f"none of the expansions' ids is a query of {benchmark} with a relevant document")
    owns = engine is None
    if engine is None:
        from diver.service import local_engine

        engine = local_engine(settings)
    try:
        col, _ = ensure_collection(engine, bench, settings, config)
        target = AssemblyTarget.for_collection(col)
        table: dict[str, dict[str, float]] = {}
        for mode in modes:
            table[mode] = {}
            for variant in variants:
                results = search_assembled(
                    target, [bench.queries[q] for q in ids], [expansions[q] for q in ids], k=k, mode=mode,
                    variant=variant, exclude=[set(bench.excluded.get(q, set())) for q in ids],
                )  # fmt: skip
                run = {q: {h.id: float(h.score) for h in r.hits} for q, r in zip(ids, results, strict=True)}
                scored = evaluate_run({q: bench.qrels[q] for q in ids}, run)
                table[mode][variant] = round(100 * scored.mean["nDCG@10"], 1)
    finally:
        if owns:
            engine.close()
    return {"benchmark": benchmark, "queries": len(ids), "embedder": settings.embedding.model,
            "ndcg10": table}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-b", "--benchmark", required=True)
    parser.add_argument("-e", "--expansions", required=True, type=Path)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args(argv)
    out = measure(args.benchmark, args.expansions, modes=tuple(args.modes.split(",")))
    print(json.dumps(out, indent=1))
    print("\n| mode | " + " | ".join(VARIANTS) + " |\n|---|" + "---|" * len(VARIANTS))
    for mode, row in out["ndcg10"].items():
        print(f"| {mode} | " + " | ".join(f"{row[v]:.1f}" for v in VARIANTS) + " |")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
