"""What one evaluation run is: its configuration, its stages, and the hook where the LLM stages plug in."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from diver.config.rerank import canonical_reranker
from diver.datasets import OFFLINE_BENCHMARKS
from diver.errors import InputError
from diver.stages.rerank import registry

RETRIEVAL_STAGES = ("bm25", "dense", "hybrid")
LLM_STAGES = ("expand", "rerank")
STAGES = RETRIEVAL_STAGES + LLM_STAGES
BENCHMARKS = ("bright", *OFFLINE_BENCHMARKS)


def llm_stages() -> tuple[str, ...]:
    """``expand``, ``rerank`` (expand + the default rerankers), then one stage per registered reranker
    (expand when an expander is configured, then that reranker alone), read from the registry now."""
    return LLM_STAGES + tuple(registry.names())


def all_stages() -> tuple[str, ...]:
    return RETRIEVAL_STAGES + llm_stages()


class StageUnavailable(InputError):
    """A requested stage cannot run here (the LLM pipeline is not available)."""


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
    index_batch: int = 128
    progress: bool = True
    data_root: Path | None = None

    def validate(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise InputError(f"unknown benchmark {self.benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
        self.stages = [canonical_reranker(s) for s in self.stages]
        unknown = [s for s in self.stages if s not in all_stages()]
        if unknown or not self.stages:
            raise InputError(f"unknown stages {unknown}; choose from {', '.join(all_stages())}")
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
