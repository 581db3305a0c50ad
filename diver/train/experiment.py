"""The offline TheoremQA measurement: theorem-disjoint folds, nDCG@10 on the test fold before and after
fine-tuning, over several seeds (``python -m diver.train.experiment --help``).

Test queries are TheoremQA questions of test-fold theorems (BRIGHT theoremqa query ids excluded everywhere)
against all 354 theorems; ``offline-test`` is ``theoremqa-theorems-offline`` restricted to its queries whose
theorem is in the test fold. Dense and hybrid scores come from a DIVER collection of the 354 theorems
(chunks embedded with the model, BM25) built in a temporary data directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from diver.benchmarks.theoremqa import build_theorems
from diver.config import DEFAULT_EMBEDDING_MODEL, load_settings
from diver.documents import make_document
from diver.metrics import ndcg_at_k
from diver.train.mining import mine_hard_negatives
from diver.train.pairs import TrainingPair
from diver.train.splits import split_by_group, theoremqa_pairs
from diver.train.trainer import FinetuneConfig, finetune

log = logging.getLogger(__name__)


def open_collection(data_dir: Path, model_path: str, corpus: Mapping[str, str], max_seq_length: int = 128) -> Any:
    """(engine, collection) of the theorem corpus embedded with ``model_path`` (BM25 + dense)."""
    from diver.engine import Engine

    settings = load_settings(
        data_dir=data_dir,
        embedding={"model": model_path, "max_seq_length": max_seq_length, "device": "cpu", "cache": False},
    )
    engine = Engine(settings)
    collection = engine.collection("theorems", create=True)
    collection.upsert([make_document(i, t, {}) for i, t in sorted(corpus.items())])
    return engine, collection


def search_ndcg(collection: Any, queries: Mapping[str, str], qrels: Mapping[str, str], mode: str) -> float:
    qids = sorted(queries)
    results = collection.search_many([queries[q] for q in qids], k=10, mode=mode)
    return float(np.mean([ndcg_at_k([h.id for h in r.hits], {qrels[q]: 1}, 10) for q, r in zip(qids, results, strict=True)]))


def evaluate(collection: Any, sets: Mapping[str, tuple[dict, dict]]) -> dict[str, float]:
    """nDCG@10 of dense and hybrid search of the collection, per evaluation set."""
    return {
        f"{name}/{mode}": round(search_ndcg(collection, queries, qrels, mode), 4)
        for name, (queries, qrels) in sets.items()
        for mode in ("dense", "hybrid")
    }


def evaluate_model(model_path: str, sets: Mapping[str, tuple[dict, dict]], corpus: Mapping[str, str],
                   workdir: Path) -> dict[str, float]:  # fmt: skip
    engine, collection = open_collection(workdir, model_path, corpus)
    try:
        return evaluate(collection, sets)
    finally:
        engine.close()


def eval_sets(folds: Mapping[str, Sequence[TrainingPair]]) -> dict[str, tuple[dict, dict]]:
    test = folds["test"]
    test_theorems = {p.positive_id for p in test}
    bench = build_theorems()
    offline = {q: next(iter(r)) for q, r in bench.qrels.items() if r and next(iter(r)) in test_theorems}
    return {
        "test": ({p.id: p.query for p in test}, {p.id: p.positive_id for p in test}),
        "offline-test": ({q: bench.queries[q] for q in offline}, offline),
    }


def summarise(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        out[key] = {"mean": round(statistics.mean(values), 4),
                    "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
                    "min": min(values), "max": max(values)}  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--negatives", type=int, default=1)
    parser.add_argument("--fn-margin", type=float, default=0.1)
    parser.add_argument("--eval-steps", type=int, default=14)
    parser.add_argument("--dev-corpus", type=int, default=100)
    parser.add_argument("--base-model", default=DEFAULT_EMBEDDING_MODEL)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    pairs, corpus = theoremqa_pairs()
    folds = split_by_group(pairs, seed=args.split_seed)
    sets = eval_sets(folds)
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()},
                              "folds": {k: len(v) for k, v in folds.items()},
                              "theorems": {k: len({p.positive_id for p in v}) for k, v in folds.items()},
                              "eval_queries": {k: len(v[0]) for k, v in sets.items()}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="diver-exp-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        engine, collection = open_collection(work / "before", args.base_model, corpus)
        try:
            report["before"] = evaluate(collection, sets)
            log.info("before: %s (%.0fs)", report["before"], time.perf_counter() - started)
            train, mining = mine_hard_negatives(collection, folds["train"], n_negatives=max(args.negatives, 1),
                                                k=30, margin=args.fn_margin)  # fmt: skip
        finally:
            engine.close()
        report["mining"] = mining.as_dict()
        runs, times = [], []
        for seed in args.seeds:
            config = FinetuneConfig(
                output_dir=args.out / f"seed{seed}", base_model=args.base_model, epochs=args.epochs,
                batch_size=args.batch_size, learning_rate=args.lr, temperature=args.temperature,
                n_negatives=args.negatives, eval_steps=args.eval_steps, seed=seed, max_seq_length=128,
                progress=False, dev_corpus_max=args.dev_corpus,
            )  # fmt: skip
            result = finetune(train if args.negatives else [replace(p, negative_ids=[]) for p in train],
                              corpus, config, dev=folds["dev"])  # fmt: skip
            scores = evaluate_model(str(result.output_dir), sets, corpus, work / f"after{seed}")
            scores["dev/dense"] = result.dev_best.get("ndcg@10", float("nan"))
            runs.append(scores)
            times.append(result.seconds)
            report.setdefault("runs", []).append({"seed": seed, "steps": result.steps, "train_seconds": round(result.seconds, 1),
                                                  "dev_before": result.dev_before, "dev_history": result.manifest["dev_history"],
                                                  "scores": scores})  # fmt: skip
            log.info("seed %d: %s (%.0fs)", seed, scores, result.seconds)
            (args.out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        report["after"] = summarise(runs)
        report["train_seconds"] = summarise([{"s": t} for t in times])["s"]
    (args.out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("folds", "before", "after", "train_seconds", "mining")}, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
