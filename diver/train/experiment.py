"""The offline TheoremQA measurement: theorem-disjoint folds, nDCG@10 on the test fold before and after
fine-tuning, over several seeds (``python -m diver.train.experiment prepare|seed|report --out DIR``).

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

from diver.config import DEFAULT_EMBEDDING_MODEL, load_settings
from diver.datasets.metrics import ndcg_at_k
from diver.datasets.theoremqa import build_theorems
from diver.errors import InputError, require
from diver.text.documents import make_document
from diver.train.mining import mine_hard_negatives
from diver.train.pairs import TrainingPair
from diver.train.splits import split_by_group, theoremqa_pairs
from diver.train.trainer import FinetuneConfig, finetune

log = logging.getLogger(__name__)
EvalSet = tuple[dict[str, str], dict[str, str]]  # (query id -> query, query id -> positive id)


def open_collection(data_dir: Path, model_path: str, corpus: Mapping[str, str], max_seq_length: int = 128) -> Any:
    """(engine, collection) of the theorem corpus embedded with ``model_path`` (BM25 + dense)."""
    from diver.service import local_engine

    settings = load_settings(
        data_dir=data_dir,
        embedding={"model": model_path, "max_seq_length": max_seq_length, "device": "cpu", "cache": True},
    )
    engine = local_engine(settings)
    collection = engine.collection("theorems", create=True)
    collection.upsert([make_document(i, t, {}) for i, t in sorted(corpus.items())])
    return engine, collection


def search_ndcg(collection: Any, queries: Mapping[str, str], qrels: Mapping[str, str], mode: str) -> float:
    qids = sorted(queries)
    results = collection.search_many([queries[q] for q in qids], k=10, mode=mode)
    return float(np.mean([ndcg_at_k([h.id for h in r.hits], {qrels[q]: 1}, 10) for q, r in zip(qids, results, strict=True)]))


def evaluate(collection: Any, sets: Mapping[str, EvalSet]) -> dict[str, float]:
    """nDCG@10 of dense and hybrid search of the collection, per evaluation set."""
    return {
        f"{name}/{mode}": round(search_ndcg(collection, queries, qrels, mode), 4)
        for name, (queries, qrels) in sets.items()
        for mode in ("dense", "hybrid")
    }


def evaluate_model(model_path: str, sets: Mapping[str, EvalSet], corpus: Mapping[str, str],
                   workdir: Path) -> dict[str, float]:  # fmt: skip
    """Collection dense/hybrid scores of a model (indexes the 354 theorems: minutes on a small CPU)."""
    engine, collection = open_collection(workdir, model_path, corpus)
    try:
        return evaluate(collection, sets)
    finally:
        engine.close()


def _test_set(pairs: Sequence[TrainingPair]) -> EvalSet:
    """(pair id -> query, pair id -> positive id) of the test pairs (theoremqa_pairs sets both ids)."""
    queries: dict[str, str] = {}
    qrels: dict[str, str] = {}
    for p in pairs:
        if p.id is None or p.positive_id is None:
            raise InputError(f"test pair without an id or a positive id: {p!r}")
        queries[p.id] = p.query
        qrels[p.id] = p.positive_id
    return queries, qrels


def eval_sets(folds: Mapping[str, Sequence[TrainingPair]]) -> dict[str, EvalSet]:
    test = folds["test"]
    test_theorems = {p.positive_id for p in test}
    bench = build_theorems()
    offline = {q: next(iter(r)) for q, r in bench.qrels.items() if r and next(iter(r)) in test_theorems}
    return {
        "test": _test_set(test),
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


def dense_ndcg(model_path: str, sets: Mapping[str, EvalSet], corpus: Mapping[str, str],
               max_seq_length: int = 128) -> dict[str, float]:  # fmt: skip
    """Exact cosine nDCG@10 with one vector per theorem (its first ``max_seq_length`` tokens: what the model
    reads of its first chunk), per evaluation set. Cheaper than a collection (no chunking, no store)."""
    from diver.index.dense.embedders import resolve_model_path

    st = require("sentence_transformers", "train", "the fine-tuning experiment")
    model = st.SentenceTransformer(resolve_model_path(model_path), device="cpu")
    model.max_seq_length = max_seq_length
    ids = sorted(corpus)
    docs = model.encode([corpus[i] for i in ids], batch_size=32, normalize_embeddings=True)
    scores = {}
    for name, (queries, qrels) in sets.items():
        qids = sorted(queries)
        qv = model.encode([queries[q] for q in qids], batch_size=32, normalize_embeddings=True)
        top = np.argsort(-(qv @ docs.T), axis=1)[:, :10]
        values = [ndcg_at_k([ids[j] for j in row], {qrels[q]: 1}, 10) for q, row in zip(qids, top, strict=True)]
        scores[f"{name}/dense1"] = round(float(np.mean(values)), 4)
    return scores


def prepare(args: argparse.Namespace) -> None:
    """Base-model scores (collection dense/hybrid and one-vector dense) and the mined training pairs."""
    from diver.train.pairs import write_pairs

    pairs, corpus = theoremqa_pairs()
    folds = split_by_group(pairs, seed=args.split_seed)
    sets = eval_sets(folds)
    report: dict[str, Any] = {"folds": {k: len(v) for k, v in folds.items()},
                              "theorems": {k: len({p.positive_id for p in v}) for k, v in folds.items()},
                              "eval_queries": {k: len(v[0]) for k, v in sets.items()}}  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="diver-exp-") as tmp:
        engine, collection = open_collection(Path(tmp), args.base_model, corpus)
        try:
            report["before"] = evaluate(collection, sets)
            log.info("before: %s (%.0fs)", report["before"], time.perf_counter() - started)
            train, mining = mine_hard_negatives(collection, folds["train"], n_negatives=max(args.negatives, 1),
                                                k=30, margin=args.fn_margin)  # fmt: skip
        finally:
            engine.close()
    report["before"].update(dense_ndcg(args.base_model, sets, corpus))
    report["mining"] = {**mining.as_dict(), "k": 30, "margin": args.fn_margin, "mode": "hybrid"}
    write_pairs(args.out / "train_mined.jsonl", train)
    (args.out / "prepare.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    log.info("prepared: %s", report)


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Fine-tune with ``seed`` on the mined pairs, keep the best dev checkpoint, score it (one-vector dense)."""
    from diver.train.pairs import load_pairs

    pairs, corpus = theoremqa_pairs()
    folds = split_by_group(pairs, seed=args.split_seed)
    if args.negatives:
        train = load_pairs(args.out / "train_mined.jsonl")
    else:  # in-batch negatives only: no mining needed
        train = [replace(p, negative_ids=[]) for p in folds["train"]]
    config = FinetuneConfig(
        output_dir=args.out / f"seed{seed}", base_model=args.base_model, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.lr, temperature=args.temperature,
        n_negatives=args.negatives, eval_steps=args.eval_steps, seed=seed, max_seq_length=128,
        progress=False, dev_corpus_max=args.dev_corpus, device="cpu",
    )  # fmt: skip
    result = finetune(train, corpus, config, dev=folds["dev"])
    scores = dense_ndcg(str(result.output_dir), eval_sets(folds), corpus)
    run = {"seed": seed, "steps": result.steps, "train_seconds": round(result.seconds, 1),
           "dev_before": result.dev_before, "dev_best": result.dev_best,
           "dev_history": result.manifest["dev_history"], "scores": scores}  # fmt: skip
    (args.out / f"seed{seed}.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
    log.info("seed %d: %s", seed, run)
    return run


def collect(args: argparse.Namespace) -> dict[str, Any]:
    prepared = args.out / "prepare.json"
    report = json.loads(prepared.read_text(encoding="utf-8")) if prepared.is_file() else {}
    runs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(args.out.glob("seed*.json"))]
    if runs:
        report["runs"] = runs
        report["after"] = summarise([{**r["scores"], "dev": r["dev_best"].get("ndcg@10", 0.0)} for r in runs])
        report["dev_before"] = runs[0]["dev_before"]
        report["train_seconds"] = summarise([{"s": r["train_seconds"]} for r in runs])["s"]
    (args.out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["prepare", "seed", "report"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--negatives", type=int, default=1)
    parser.add_argument("--fn-margin", type=float, default=0.1)
    parser.add_argument("--eval-steps", type=int, default=7)
    parser.add_argument("--dev-corpus", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--base-model", default=DEFAULT_EMBEDDING_MODEL)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch = require("torch", "train", "the fine-tuning experiment")
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "prepare":
        prepare(args)
    elif args.stage == "seed":
        for seed in args.seeds:
            run_seed(args, seed)
    report = collect(args)
    print(json.dumps({k: report.get(k) for k in ("folds", "before", "after", "train_seconds", "mining")}, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
