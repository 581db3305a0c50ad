"""Settings of the rerank stage (``rerank`` in ``DiverSettings``) and its groupwise and cross-encoder sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from diver.config.base import Section

RerankerName = Literal["pointwise", "listwise", "groupwise", "cross-encoder"]
RERANKER_NAMES: tuple[str, ...] = ("pointwise", "listwise", "groupwise", "cross-encoder")

# DIVER's Reranker/rerank_groupwise.py defaults (10/10/2) and its v3 script (reranker_script.sh: 20/20/6).
GROUPWISE_PRESETS: dict[str, dict[str, int]] = {
    "reference": {"group_size": 10, "interval": 10, "repeat_num": 2},
    "v3": {"group_size": 20, "interval": 20, "repeat_num": 6},
}


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
    domain_kind: Literal["general", "coding", "math-theorem", "math-problem", "documentation"] = Field(
        "general", description="Pointwise prompt variant (e.g. math-theorem for TheoremQA theorems)."
    )
    rerankers: list[RerankerName] | None = Field(
        None,
        description="Rerankers to run (pointwise, listwise, groupwise, cross-encoder); None = the default: "
        "pointwise+listwise (those switched on) with an LLM reranker, else the cross-encoder when one is "
        "configured, else none; [] = none. With LLM rerankers the cross-encoder is their first pass.",
    )
    provider: Literal["auto", "llm", "cross-encoder"] = Field(
        "auto", description="Default reranker when 'rerankers' is None; 'auto' = LLM if configured, else cross-encoder."
    )
    groupwise_weight: float = Field(0.4, ge=0, le=1, description="Weight of groupwise ranks in the final merge.")
    groupwise: GroupwiseSettings = Field(default_factory=GroupwiseSettings)
    cross_encoder: CrossEncoderSettings = Field(default_factory=CrossEncoderSettings)
