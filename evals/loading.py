"""Loading benchmarks (with query rewrites) and building or reusing their collections."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from diver.cache import stable_key
from diver.config import DiverSettings
from diver.datasets import (
    DOMAINS,
    OFFLINE_BENCHMARKS,
    Benchmark,
    build_offline,
    load_bright,
    load_rewrites,
    normalize_domain,
    parse_source,
)
from diver.datasets.bright import BrightSource
from diver.errors import InputError
from diver.text.jsonl import read_jsonl

from .config import EvalConfig
from .stages import batches, progress

log = logging.getLogger(__name__)


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
    for number, row in read_jsonl(path):
        if isinstance(row, dict) and "id" in row and "query" in row:
            found.setdefault(_domain_key(str(row.get("domain", ""))), {})[str(row["id"])] = str(row["query"])
        elif isinstance(row, dict) and len(row) == 1 and isinstance(next(iter(row.values())), str):
            qid, query = next(iter(row.items()))
            found.setdefault("", {})[str(qid)] = query
        else:
            raise InputError(f'{path}:{number}: expected {{"id": ..., "query": ...}}')
    return found


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
        *(["model_prompts=false"] if not settings.embedding.model_prompts else []),  # old keys unchanged
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
    with progress(bench.corpus.size, f"index {bench.domain}", config.progress, unit="doc") as bar:
        for batch in batches(bench.corpus, config.index_batch):
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
