"""What one evaluation run is: its configuration, its stages, and the hook where the LLM stages plug in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from diver.benchmarks import OFFLINE_BENCHMARKS, Benchmark
from diver.config import DiverSettings
from diver.errors import InputError

from .trec import Ranking

RETRIEVAL_STAGES = ("bm25", "dense", "hybrid")
LLM_STAGES = ("expand", "rerank")
STAGES = RETRIEVAL_STAGES + LLM_STAGES
BENCHMARKS = ("bright", *OFFLINE_BENCHMARKS)


class StageUnavailable(InputError):
    """A requested stage cannot run here (the LLM pipeline is not available)."""


LLMStage = Callable[[Benchmark, dict[str, Ranking], DiverSettings], dict[str, Ranking]]


def llm_stage_runner(stage: str) -> LLMStage:
    """The one hook where the LLM stages plug in.

    It must return a function (benchmark, hybrid rankings, settings) -> rankings that runs ``stage``
    (``expand``: DIVER's iterative query expansion then hybrid retrieval; ``rerank``: expansion then
    pointwise + listwise reranking) through ``diver.graph.run_deep_search`` for each query.

    Still refused: the protocol needs each query's excluded ids removed before any cut, and the deep
    search must also never show them to the LLM as feedback (for TheoremQA they include the query's own
    problem, answer included). ``run_deep_search`` has no per-query ``exclude`` yet; once it has, wire it
    here (k=1000, excluded ids passed through, rewrites cached by the LLM cache) and drop the refusal.
    """
    raise StageUnavailable(
        f"stage {stage!r} needs the LLM pipeline with per-query excluded ids (graph.run_deep_search has no "
        "'exclude' yet, and without it the expander would see excluded documents). Run --stages "
        "bm25,dense,hybrid; to reproduce LLM-expanded rows without an LLM, pass precomputed rewrites with "
        "--queries FILE (jsonl: id, query) or --queries bright:gpt4_reason."
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
    index_batch: int = 128
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
