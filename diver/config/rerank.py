"""Settings of the rerank stage (``rerank`` in ``DiverSettings``) and its groupwise and cross-encoder sections."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from diver.config.base import Section

log = logging.getLogger(__name__)

# Old spellings accepted at input boundaries (config values, the MCP argument, the eval flag), never output.
_DEPRECATED_NAMES = {"cross-encoder": "cross_encoder"}


def canonical_reranker(name: str) -> str:
    """The one spelling of a reranker's name (the registry's); ``cross-encoder`` -> ``cross_encoder``, logged.

    The names themselves are checked against ``diver.stages.rerank.registry`` where they are used (the
    config package is the ground floor and imports no stage)."""
    new = _DEPRECATED_NAMES.get(name)
    if new is None:
        return name
    log.warning("reranker name %r is deprecated; use %r", name, new)
    return new

# DIVER's Reranker/rerank_groupwise.py defaults (10/10/2) and its v3 script (reranker_script.sh: 20/20/6).
GROUPWISE_PRESETS: dict[str, dict[str, int]] = {
    "reference": {"group_size": 10, "interval": 10, "repeat_num": 2},
    "v3": {"group_size": 20, "interval": 20, "repeat_num": 6},
}


class SamplingSettings(Section):
    """Sampling of one reranker's calls; None = the model's own setting (llm.<role>)."""

    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling.")
    max_tokens: int | None = Field(None, ge=1, le=131072, description="Max output tokens per call.")


class GroupwiseSettings(Section):
    """GroupRank (DIVER v3): groups of candidates scored 0..10 in one call each, over shuffled rounds."""

    preset: Literal["reference", "v3"] | None = Field(
        None,
        description="'reference' = 10/10/2 (rerank_groupwise.py defaults), 'v3' = 20/20/6 (DIVER's v3 script, "
        "30 calls per query); sets group_size/interval/repeat_num.",
    )
    input_k: int = Field(100, ge=1, le=1000, description="Top candidates grouped (DIVER: 100).")
    group_size: int = Field(10, ge=1, le=100, description="Documents per group (prompt).")
    interval: int = Field(10, ge=1, le=100, description="Step between group starts (< group_size overlaps).")
    repeat_num: int = Field(2, ge=1, le=20, description="Shuffled rounds; a document's score is its mean.")
    seed: int = Field(666, description="Seed of the per-round shuffles (DIVER: random.seed(666)).")
    max_doc_chars: int = Field(3000, ge=16, le=100_000, description="Documents cut to this many characters.")
    temperature: float = Field(0.3, ge=0, le=2, description="Sampling temperature (DIVER: 0.3).")
    top_p: float = Field(0.8, gt=0, le=1, description="Nucleus sampling (DIVER: 0.8).")
    max_tokens: int = Field(
        8000, ge=1, le=131072,
        description="Max output tokens per group call, reasoning section included (DIVER: 8000; a cut "
        "reply scores the whole group 0).",
    )  # fmt: skip
    shuffle: Literal["per_query", "reference"] = Field(
        "per_query",
        description="'per_query' = each query's shuffles from its own Random(seed); 'reference' = one "
        "random.seed(seed) stream over all queries of a run in order, epoch by epoch, as rerank_groupwise.py "
        "(a query's groups depend on the queries before and after it; diver eval only).",
    )
    blend: float = Field(0.6, ge=0, le=1, description="final = blend * group score + (1 - blend) * retrieval.")

    @model_validator(mode="after")
    def _apply_preset(self) -> GroupwiseSettings:
        if self.preset is not None:
            for name, value in GROUPWISE_PRESETS[self.preset].items():
                object.__setattr__(self, name, value)
        return self


class CrossEncoderSettings(Section):
    """A sentence-transformers ``CrossEncoder`` run in-process (GPU when there is one)."""

    model: str | None = Field(
        None, description="CrossEncoder model id or local path (e.g. BAAI/bge-reranker-v2-m3); None = off."
    )
    device: str = Field("auto", description="'auto' (cuda, mps, else cpu), or a torch device name.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="'auto' = float16 on CUDA/MPS, float32 on CPU."
    )
    max_length: int = Field(512, ge=8, le=32768, description="Tokens per (query, document) pair.")
    batch_size: int = Field(32, ge=1, le=4096, description="Pairs per forward pass (sorted by length).")
    doc_chars: int = Field(4000, ge=16, le=200_000, description="Documents cut to this many characters.")
    blend: float = Field(
        0.5, ge=0, le=1, description="final = blend * cross-encoder score + (1 - blend) * retrieval score."
    )
    llm_k: int = Field(
        20, ge=1, le=1000,
        description="Before LLM rerankers the cross-encoder is a first pass: they rerank its top llm_k.",
    )  # fmt: skip


class RerankSettings(Section):
    rerank_k: int = Field(100, ge=1, le=1000, description="Candidates reranked.")
    pointwise: bool = Field(True, description="Run the pointwise reranker (one call per document).")
    listwise: bool = Field(True, description="Run the listwise reranker (ranked ids in a JSON block).")
    pointwise_blend: float = Field(
        0.5, ge=0, le=1, description="Weight of the LLM score/10 vs the retrieval score (DIVER: 0.5)."
    )
    pointwise_mode: Literal["reference", "renormalised"] = Field(
        "reference",
        description="'reference' = DIVER: blend * LLM/10 + (1 - blend) * hybrid score, a reply without a "
        "score counts 0; 'renormalised' = hybrid min-max normalised over the candidates and a missing LLM "
        "score imputed with the mean (for retrieval scores not on a [0, 1] scale, e.g. RRF).",
    )
    pointwise_weight: float = Field(0.6, ge=0, le=1, description="Weight of pointwise in the final merge.")
    listwise_weight: float = Field(0.4, ge=0, le=1, description="Weight of listwise in the final merge.")
    window_size: int = Field(20, ge=2, le=1000, description="Listwise sliding-window size.")
    window_step: int = Field(10, ge=1, le=1000, description="Listwise sliding-window step.")
    doc_tokens: int = Field(512, ge=16, le=32768, description="Each document is cut to this many tokens.")
    pointwise_doc_tokens: int | None = Field(
        None, ge=16, le=131072, description="Pointwise's cut (DIVER: 15000 tokens); None = doc_tokens."
    )
    listwise_doc_tokens: int | None = Field(
        None, ge=16, le=131072,
        description="Listwise's cut when all candidates fit one call (DIVER: none, whole documents); None = "
        "doc_tokens.",
    )  # fmt: skip
    pointwise_sampling: SamplingSettings = Field(
        default_factory=SamplingSettings, description="Pointwise calls (DIVER: temperature 0.6, top_p 0.9, 128 tokens)."
    )
    listwise_sampling: SamplingSettings = Field(
        default_factory=SamplingSettings, description="Listwise calls (DIVER: temperature 0.8, top_p 0.8)."
    )
    domain_kind: Literal["general", "coding", "math-theorem", "math-problem", "documentation"] = Field(
        "general", description="Pointwise prompt variant (e.g. math-theorem for TheoremQA theorems)."
    )
    rerankers: list[str] | None = Field(
        None,
        description="Rerankers to run, by registry name (pointwise, listwise, groupwise, cross_encoder, or one "
        "registered by a plugin; checked when the graph plans the run); None = the default: "
        "pointwise+listwise (those switched on) with an LLM reranker, else the cross-encoder when one is "
        "configured, else none; [] = none. With LLM rerankers the cross-encoder is their first pass.",
    )
    provider: Literal["auto", "llm", "cross_encoder"] = Field(
        "auto", description="Default reranker when 'rerankers' is None; 'auto' = LLM if configured, else cross-encoder."
    )
    groupwise_weight: float = Field(0.4, ge=0, le=1, description="Weight of groupwise ranks in the final merge.")
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Merge weight per reranker name (of its -ln(rank+1)); overrides the <name>_weight knobs "
        "and a registered reranker's default weight.",
    )
    groupwise: GroupwiseSettings = Field(default_factory=GroupwiseSettings)
    cross_encoder: CrossEncoderSettings = Field(default_factory=CrossEncoderSettings)

    @field_validator("rerankers", mode="before")
    @classmethod
    def _canonical_names(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [canonical_reranker(v) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("provider", mode="before")
    @classmethod
    def _canonical_provider(cls, value: Any) -> Any:
        return canonical_reranker(value) if isinstance(value, str) else value

    @field_validator("weights", mode="before")
    @classmethod
    def _canonical_weights(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {canonical_reranker(k) if isinstance(k, str) else k: v for k, v in value.items()}
        return value

    @field_validator("weights")
    @classmethod
    def _weights_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"rerank weights must be within [0, 1]: {bad}")
        return value
