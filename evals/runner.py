"""Run an evaluation: load the benchmark, build or reuse its collection, run each stage, score, report.

Protocol (BRIGHT's reference): each query's excluded ids are removed from its ranking before any cutoff,
the top 1000 are kept, metrics come from pytrec_eval. Finished stages are written atomically and never
recomputed; an unfinished stage keeps a per-batch checkpoint, so Ctrl-C leaves a resumable run directory.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from diver.benchmarks import (
    DOMAINS,
    NOT_COMPARABLE,
    OFFLINE_BENCHMARKS,
    Benchmark,
    build_offline,
    load_bright,
    load_rewrites,
    normalize_domain,
    parse_source,
)
from diver.benchmarks.bright import BrightSource
from diver.cache import stable_key
from diver.config import DiverSettings, load_settings
from diver.errors import InputError
from diver.metrics import MetricResult, average_over, evaluate_run

from . import manifest as mf
from .report import console_table, render_report, write_chart
from .trec import Checkpoint, Ranking, as_scores, read_run, write_run

log = logging.getLogger(__name__)

RETRIEVAL_STAGES = ("bm25", "dense", "hybrid")
LLM_STAGES = ("expand", "rerank")
STAGES = RETRIEVAL_STAGES + LLM_STAGES
BENCHMARKS = ("bright", *OFFLINE_BENCHMARKS)
T = TypeVar("T")


class StageUnavailable(InputError):
    """A requested stage cannot run here (the LLM pipeline is not available)."""


LLMStage = Callable[[Benchmark, dict[str, Ranking], DiverSettings], dict[str, Ranking]]


def llm_stage_runner(stage: str) -> LLMStage:
    """The hook where the LLM stages plug in.

    It must return a function (benchmark, hybrid rankings, settings) -> rankings that runs ``stage``
    (``expand``: DIVER's iterative query expansion then hybrid retrieval; ``rerank``: expansion then
    pointwise + listwise reranking) through ``graph.run_deep_search``. Until that pipeline exists the
    stage is refused before any work is done.
    """
    raise StageUnavailable(
        f"stage {stage!r} needs the LLM pipeline (graph.run_deep_search), which is not available yet. "
        "Run --stages bm25,dense,hybrid; to reproduce LLM-expanded rows without an LLM, pass precomputed "
        "rewrites with --queries FILE (jsonl: id, query) or --queries bright:gpt4_reason."
    )


@dataclass
class EvalConfig:
    """One evaluation run. Everything but ``stages``, ``out_dir`` and ``progress`` identifies the run."""

    benchmark: str
    stages: list[str] = field(default_factory=lambda: list(RETRIEVAL_STAGES))
    domains: list[str] | None = None
    queries: str | None = None
    long: bool = False
    bright_source: str = "hf"
    out_dir: Path | None = None
    limit_queries: int | None = None
    top_k: int = 1000
    query_batch: int = 32
    index_batch: int = 256
    progress: bool = True
    data_root: Path | None = None

    def validate(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise InputError(f"unknown benchmark {self.benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown or not self.stages:
            raise InputError(f"unknown stages {unknown}; choose from {', '.join(STAGES)}")
        for stage in self.stages:
            if stage in LLM_STAGES:
                llm_stage_runner(stage)
        if self.benchmark in OFFLINE_BENCHMARKS:
            if self.long:
                raise InputError(f"--long applies to BRIGHT only, not {self.benchmark}")
            if self.domains:
                raise InputError(f"{self.benchmark} has a single domain; drop --domains")
        if self.limit_queries is not None and self.limit_queries < 1:
            raise InputError("--limit-queries must be positive")
        if not 1 <= self.top_k <= 10000:
            raise InputError("top_k must be between 1 and 10000")

    def identity(self) -> dict[str, Any]:
        ident = asdict(self)
        for transient in ("stages", "out_dir", "progress", "query_batch", "index_batch", "data_root"):
            ident.pop(transient)
        return ident


@dataclass
class EvalResult:
    out_dir: Path
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    table: str


# --------------------------------------------------------------------------- loading


def load_benchmarks(config: EvalConfig) -> list[Benchmark]:
    source: BrightSource | None = None
    if config.benchmark in OFFLINE_BENCHMARKS:
        benches = [build_offline(config.benchmark, config.data_root)]
    else:
        source = parse_source(config.bright_source, config.data_root)
        domains = [normalize_domain(d) for d in (config.domains or DOMAINS)]
        benches = [load_bright(d, source, long=config.long, data_root=config.data_root) for d in domains]
    if config.queries:
        benches = apply_rewrites(benches, config.queries, config)
    return [b.limited(config.limit_queries) for b in benches]


def apply_rewrites(benches: list[Benchmark], spec: str, config: EvalConfig) -> list[Benchmark]:
    """``bright:<config>`` (a BRIGHT query config such as gpt4_reason) or a jsonl file of rewrites."""
    if spec.startswith("bright:"):
        source = parse_source(config.bright_source, config.data_root)
        bright_name = spec.removeprefix("bright:")
        out = []
        for bench in benches:
            domain = (
                bench.domain
                if bench.name == "bright"
                else bench.domain.removesuffix("-offline").replace("-", "_")
            )
            out.append(bench.with_queries(load_rewrites(source, bright_name, domain), spec))
        return out
    rewrites = read_rewrites(Path(spec))
    return [
        b.with_queries({**rewrites.get("", {}), **rewrites.get(_domain_key(b.domain), {})}, spec)
        for b in benches
    ]


def _domain_key(domain: str) -> str:
    return domain.strip().lower().replace("-", "_")


def read_rewrites(path: Path) -> dict[str, dict[str, str]]:
    """jsonl rewrites: ``{"id": ..., "query": ...}`` (optional ``"domain"``) or ``{"<id>": "<query>"}`` lines.

    Returns domain -> id -> query; ``""`` holds lines without a domain.
    """
    if not path.is_file():
        raise InputError(f"--queries: no file {path}")
    found: dict[str, dict[str, str]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
            if isinstance(row, dict) and "id" in row and "query" in row:
                found.setdefault(_domain_key(str(row.get("domain", ""))), {})[str(row["id"])] = str(
                    row["query"]
                )
            elif isinstance(row, dict) and len(row) == 1 and isinstance(next(iter(row.values())), str):
                qid, query = next(iter(row.items()))
                found.setdefault("", {})[str(qid)] = query
            else:
                raise InputError(f'{path}:{number}: expected {{"id": ..., "query": ...}}')
    return found


# --------------------------------------------------------------------------- collections


def collection_name(bench: Benchmark, settings: DiverSettings, config: EvalConfig) -> str:
    """One collection per benchmark, domain, corpus source, embedder, chunking and BM25 configuration."""
    corpus_key = (
        sorted(bench.sources.items()) if bench.name != "bright" else [config.bright_source, config.long]
    )
    key = stable_key(
        bench.name,
        bench.domain,
        corpus_key,
        settings.embedding.provider,
        settings.embedding.model,
        settings.embedding.max_seq_length,
        settings.embedding.document_prefix,
        settings.chunking.model_dump(),
        settings.bm25.model_dump(),
        settings.store.hnsw_space,
    )[:10]
    stem = (
        bench.name
        if bench.name != "bright"
        else f"bright-{bench.domain.replace('_', '-')}" + ("-long" if config.long else "")
    )
    return f"eval-{stem}-{key}"


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _progress(total: int | None, desc: str, enabled: bool, initial: int = 0, unit: str = "q") -> Any:
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


def ensure_collection(
    engine: Any, bench: Benchmark, settings: DiverSettings, config: EvalConfig
) -> tuple[Any, dict[str, Any]]:
    """Open the benchmark's collection, indexing whatever is missing. Returns (collection, reuse info)."""
    name = collection_name(bench, settings, config)
    marker = settings.data_dir / "evals" / "collections" / f"{name}.json"
    existing = {info.name: info for info in engine.list_collections()}
    if marker.is_file() and name in existing:
        done = json.loads(marker.read_text(encoding="utf-8"))
        if done.get("documents") == existing[name].documents:
            log.info("reusing collection %s (%d documents)", name, existing[name].documents)
            return engine.collection(name), {
                "collection": name,
                "reused": True,
                "documents": done["documents"],
                "corpus": done.get("corpus", {}),
            }
    col = engine.collection(name, create=True)
    totals = {"added": 0, "replaced": 0, "unchanged": 0, "chunks": 0, "skipped": 0}
    started = time.perf_counter()
    count = 0
    with _progress(bench.corpus.size, f"index {bench.domain}", config.progress, unit="doc") as bar:
        for batch in _batches(bench.corpus, config.index_batch):
            report = col.upsert(batch, progress=False)
            for key in ("added", "replaced", "unchanged", "chunks"):
                totals[key] += getattr(report, key)
            totals["skipped"] += len(report.skipped)
            count += len(batch)
            bar.update(len(batch))
    stored = {i.name: i.documents for i in engine.list_collections()}.get(name, count)
    info = {
        "collection": name,
        "reused": totals["unchanged"] == count and count > 0,
        "documents": stored,
        "index": totals,
        "index_seconds": round(time.perf_counter() - started, 2),
        "corpus": bench.corpus.fingerprint(),
    }
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(info, indent=1), encoding="utf-8")
    return col, info


# --------------------------------------------------------------------------- stages


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
    with _progress(len(bench.queries), f"{mode} {bench.domain}", config.progress, initial=len(done)) as bar:
        for batch in _batches(todo, config.query_batch):
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


def default_out_dir(config: EvalConfig, settings: DiverSettings) -> Path:
    return (
        Path("runs") / f"{config.benchmark}-{stable_key(config.identity(), _settings_identity(settings))[:8]}"
    )


def _settings_identity(settings: DiverSettings) -> dict[str, Any]:
    snap = mf.settings_snapshot(settings)
    for transient in ("data_dir", "cache_dir", "server"):
        snap.pop(transient, None)
    return snap


# --------------------------------------------------------------------------- the run


def run_eval(config: EvalConfig, settings: DiverSettings | None = None, engine: Any = None) -> EvalResult:
    """Run ``config`` end to end and write the run directory. ``engine`` may be injected (tests)."""
    config.validate()
    settings = settings or load_settings()
    started = time.perf_counter()
    benches = load_benchmarks(config)
    out_dir = config.out_dir or default_out_dir(config, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = RunState(out_dir, {"config": config.identity(), "settings": _settings_identity(settings)})
    stage_order = [s for s in STAGES if s in config.stages]
    owns_engine = engine is None
    if engine is None:
        from diver.engine import Engine

        engine = Engine(settings)
    collections: dict[str, Any] = {}
    reused_runs: list[str] = []
    notes: dict[str, list[str]] = {b.domain: list(b.notes) for b in benches}
    runs: dict[str, dict[str, dict[str, Ranking]]] = {s: {} for s in stage_order}
    try:
        for bench in benches:
            col = None
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
                ranking = retrieve(col, bench, stage, config, settings, checkpoint, notes[bench.domain])
                write_run(path, ranking, tag=f"diver-{stage}")
                checkpoint.remove()
                state.finish(
                    stage,
                    bench.domain,
                    {"seconds": round(time.perf_counter() - t0, 2), "queries": len(ranking)},
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
    data: dict[str, str] = {}
    for bench in benches:
        data.update(bench.sources)
        data.update(bench.corpus.fingerprint())
    if config.queries and not config.queries.startswith("bright:"):
        from diver.benchmarks.model import sha256_file

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
        reused["embedding_cache"] = cache_stats()  # hits = vectors read back instead of computed
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
        "models": embedder,
        "versions": mf.package_versions(),
        "git": mf.git_commit(),
        "data_sha256": data,
        "collections": collections,
        "reused": reused,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
