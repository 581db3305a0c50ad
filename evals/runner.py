"""Run an evaluation: load the benchmark, build or reuse its collection, run each stage, score, report.

Protocol (BRIGHT's reference): each query's excluded ids are removed from its ranking before any cutoff,
the top 1000 are kept, metrics come from pytrec_eval. Finished stages are written atomically and never
recomputed; an unfinished stage keeps a per-batch checkpoint, so Ctrl-C leaves a resumable run directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from diver.cache import stable_key
from diver.config import DiverSettings, load_settings
from diver.datasets import NOT_COMPARABLE, Benchmark
from diver.datasets.metrics import MetricResult, average_over, evaluate_run
from diver.errors import InputError

from . import manifest as mf
from .config import (
    BENCHMARKS,
    LLM_STAGES,
    RETRIEVAL_STAGES,
    STAGES,
    EvalConfig,
    EvalResult,
    StageUnavailable,
    all_stages,
    llm_stages,
)
from .llm_stages import check_llm_stage, run_llm_stage
from .loading import ensure_collection, load_benchmarks
from .report import console_table, render_report, write_chart
from .stages import retrieve
from .trec import Checkpoint, Ranking, as_scores, read_run, write_run
from .weights import domain_w_dense, engine_w_dense, fusion_record

__all__ = [
    "BENCHMARKS",
    "LLM_STAGES",
    "RETRIEVAL_STAGES",
    "STAGES",
    "EvalConfig",
    "EvalResult",
    "StageUnavailable",
    "run_eval",
]


class RunState:
    """``state.json`` of a run directory: the run's identity and its finished stages."""

    def __init__(self, out_dir: Path, identity: dict[str, Any]) -> None:
        self.path = out_dir / "state.json"
        self.key = stable_key(identity)
        self.data: dict[str, Any] = {"identity_key": self.key, "identity": identity, "finished": {}}
        if self.path.is_file():
            old = json.loads(self.path.read_text(encoding="utf-8"))
            if old.get("identity_key") != self.key:
                raise InputError(
                    f"{out_dir} holds a run with another configuration; choose another --out "
                    "or remove that directory"
                )
            self.data = old

    def finished(self, stage: str, domain: str) -> dict[str, Any] | None:
        return self.data["finished"].get(f"{stage}/{domain}")

    def finish(self, stage: str, domain: str, info: dict[str, Any]) -> None:
        self.data["finished"][f"{stage}/{domain}"] = info
        self.save()

    def save(self) -> None:
        tmp = self.path.with_name("state.json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1), encoding="utf-8")
        tmp.replace(self.path)


def run_file(out_dir: Path, stage: str, domain: str) -> Path:
    return out_dir / f"run.{stage}.{domain}.trec"


def default_out_dir(config: EvalConfig, settings: DiverSettings, domains: list[str] | None = None) -> Path:
    identity = _settings_identity(settings, domains or [])
    return Path("runs") / f"{config.benchmark}-{stable_key(config.identity(), identity)[:8]}"


def _settings_identity(settings: DiverSettings, domains: list[str]) -> dict[str, Any]:
    snap = mf.settings_snapshot(settings)
    for transient in ("data_dir", "cache_dir", "server"):
        snap.pop(transient, None)
    weights = _domain_weights(domains, settings)
    if weights:  # hybrid runs of these domains used DIVER's per-domain weight, not fusion.w_dense
        snap["domain_w_dense"] = weights
    return snap


def _domain_weights(domains: list[str], settings: DiverSettings) -> dict[str, float]:
    """Domains whose hybrid weight differs from ``fusion.w_dense`` (DIVER's per-domain reference)."""
    if settings.fusion.method != "minmax":
        return {}
    weights = {d: domain_w_dense(d, settings)[0] for d in domains}
    return {d: w for d, w in weights.items() if w != settings.fusion.w_dense}


# --------------------------------------------------------------------------- the run


# Over 60 lines: the run's sequence (collections, stages per domain, manifest) with one cleanup path.
def run_eval(
    config: EvalConfig, settings: DiverSettings | None = None, engine: Any = None, chat_factory: Any = None
) -> EvalResult:
    """Run ``config`` end to end and write the run directory. ``engine`` and ``chat_factory`` (LLM stages)
    may be injected (tests)."""
    config.validate()
    settings = settings or load_settings()
    for stage in config.stages:
        if stage in llm_stages():
            check_llm_stage(stage, settings)  # before any work: a missing LLM is refused at once
    started = time.perf_counter()
    benches = load_benchmarks(config)
    domains = [b.domain for b in benches]
    out_dir = config.out_dir or default_out_dir(config, settings, domains)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = RunState(
        out_dir, {"config": config.identity(), "settings": _settings_identity(settings, domains)}
    )
    stage_order = [s for s in all_stages() if s in config.stages]
    owns_engine = engine is None
    if engine is None:
        from diver.service import local_engine

        engine = local_engine(settings)
    collections: dict[str, Any] = {}
    reused_runs: list[str] = []
    notes: dict[str, list[str]] = {b.domain: list(b.notes) for b in benches}
    runs: dict[str, dict[str, dict[str, Ranking]]] = {s: {} for s in stage_order}
    try:
        for bench in benches:
            col = None
            with engine_w_dense(engine, domain_w_dense(bench.domain, settings)[0]):
                for stage in stage_order:
                    path = run_file(out_dir, stage, bench.domain)
                    if path.is_file() and state.finished(stage, bench.domain):
                        runs[stage][bench.domain] = read_run(path)
                        reused_runs.append(path.name)
                        continue
                    if col is None:
                        col, collections[bench.domain] = ensure_collection(engine, bench, settings, config)
                    checkpoint = Checkpoint(out_dir / f"run.{stage}.{bench.domain}.partial.jsonl")
                    t0 = time.perf_counter()
                    llm_stats: dict[str, Any] = {}
                    if stage in llm_stages():
                        ranking, llm_stats = run_llm_stage(
                            col, bench, stage, config, settings, checkpoint, notes[bench.domain], chat_factory
                        )
                    else:
                        ranking = retrieve(
                            col, bench, stage, config, settings, checkpoint, notes[bench.domain]
                        )
                    write_run(path, ranking, tag=f"diver-{stage}")
                    checkpoint.remove()
                    state.finish(
                        stage,
                        bench.domain,
                        {"seconds": round(time.perf_counter() - t0, 2), "queries": len(ranking), **llm_stats},
                    )
                    runs[stage][bench.domain] = ranking
        metrics = score(benches, runs, stage_order, state, config, notes)
        manifest = build_manifest(config, settings, engine, benches, collections, reused_runs, started)
    finally:
        if owns_engine:
            engine.close()
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    (out_dir / "report.md").write_text(render_report(metrics, manifest), encoding="utf-8")
    write_chart(metrics, out_dir / "ndcg10.png")
    return EvalResult(out_dir=out_dir, metrics=metrics, manifest=manifest, table=console_table(metrics))


def score(
    benches: list[Benchmark],
    runs: dict[str, dict[str, dict[str, Ranking]]],
    stage_order: list[str],
    state: RunState,
    config: EvalConfig,
    notes: dict[str, list[str]],
) -> dict[str, Any]:
    comparable = all(b.comparable_to_bright for b in benches)
    stages: dict[str, Any] = {}
    for stage in stage_order:
        results: dict[str, MetricResult] = {}
        domains: dict[str, Any] = {}
        for bench in benches:
            result = evaluate_run(bench.qrels, as_scores(runs[stage][bench.domain]))
            results[bench.domain] = result
            finished = state.finished(stage, bench.domain) or {}
            domains[bench.domain] = {
                "mean": result.mean,
                "queries": result.evaluated,
                "skipped_no_relevant": result.skipped_no_relevant,
                "seconds": finished.get("seconds", 0.0),
                "per_query": result.per_query,
            }
        stages[stage] = {"domains": domains, "average": average_over(results)}
    return {
        "benchmark": config.benchmark,
        "comparable_to_bright": comparable,
        "comparability": "comparable to published BRIGHT numbers" if comparable else NOT_COMPARABLE,
        "domains": [b.domain for b in benches],
        "stage_order": stage_order,
        "top_k": config.top_k,
        "qrels_field": "gold_ids_long"
        if config.long
        else ("gold_ids" if config.benchmark == "bright" else "derived"),
        "query_origin": config.queries or "original queries",
        "stages": stages,
        "notes": notes,
    }


def build_manifest(
    config: EvalConfig,
    settings: DiverSettings,
    engine: Any,
    benches: list[Benchmark],
    collections: dict[str, Any],
    reused_runs: list[str],
    started: float,
) -> dict[str, Any]:
    embedder: dict[str, Any] = {"embedder": settings.embedding.model, "provider": settings.embedding.provider}
    if collections:  # the engine was used: its embedder is worth describing (and cheap to reach)
        emb = engine.embedder
        embedder.update(
            {"embedder_id": emb.id, "dimensions": emb.dimensions, "max_seq_length": emb.max_seq_length}
        )
        prompts = getattr(emb, "prompts", None)  # which query/document instruction was used, and why
        embedder["prompts"] = prompts.record() if prompts is not None else None
        choice = getattr(emb, "backend_choice", None)  # embedding.backend: the runtime used (auto's pick)
        if choice is not None:
            embedder["embedding_backend"] = {**asdict(choice), "summary": choice.summary()}
    data: dict[str, str] = {}
    for bench in benches:
        data.update(bench.sources)
        data.update(bench.corpus.fingerprint())
    if config.queries and not config.queries.startswith("bright:"):
        from diver.datasets.model import sha256_file

        data[config.queries] = sha256_file(Path(config.queries))
    reused = {
        "collections": {
            d: ("reused" if c.get("reused") else f"indexed {c.get('index', {})}")
            for d, c in collections.items()
        },
        "run_files": reused_runs or "none",
    }
    cache_stats = getattr(engine.embedder, "cache_stats", None) if collections else None
    if callable(cache_stats):
        cache_stats = cache_stats()
    if isinstance(cache_stats, dict) and cache_stats:
        reused["embedding_cache"] = cache_stats  # hits = vectors read back from disk instead of computed
    return {
        "created_at": mf.now_iso(),
        "command": mf.command_line(),
        "comparability": "comparable to published BRIGHT numbers"
        if all(b.comparable_to_bright for b in benches)
        else NOT_COMPARABLE,
        "eval_config": {
            **asdict(config),
            "out_dir": str(config.out_dir) if config.out_dir else None,
            "data_root": str(config.data_root) if config.data_root else None,
        },
        "settings": mf.settings_snapshot(settings),
        "fusion": fusion_record([b.domain for b in benches], settings),
        "models": embedder,
        "versions": mf.package_versions(),
        "git": mf.git_commit(),
        "data_sha256": data,
        "collections": collections,
        "reused": reused,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
