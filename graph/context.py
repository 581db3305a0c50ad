"""Runtime context of one deep search: which collection, and per-run overrides of the settings.

Every field left at None falls back to the loaded ``DiverSettings`` (defaults, DIVER_* env, DIVER_CONFIG).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from diver.config import DiverSettings, ExpansionSettings, LLMSettings, RerankSettings


def _knob(description: str, default: Any = None) -> Any:
    return field(default=default, metadata={"description": description})


@dataclass(kw_only=True)
class Context:
    """Knobs of one deep-search run (LangGraph runtime context)."""

    collection: str = _knob("Name of the collection to search (opened from settings.data_dir).", "")
    k: int = _knob("Number of ranked documents returned.", 10)
    expand: bool = _knob("Run LLM query expansion (needs an expander model).", True)
    rounds: int | None = _knob("Expansion rounds (DIVER: 2); 0 = retrieval only.")
    feedback_k: int | None = _knob("Unseen top passages shown to the expander per round (DIVER: 5).")
    n: int | None = _knob("Expansion completions sampled per round (DIVER: 2, temperature 0.7).")
    passage_tokens: int | None = _knob("Feedback passages are cut to this many tokens (DIVER: 512).")
    stop_overlap: float | None = _knob("Stop early when top-10 overlap with the previous round >= this.")
    ask_sufficiency: bool | None = _knob("Ask the LLM whether the current top documents suffice.")
    feedback_retrieval: str | None = _knob("Passages fed back to the expander: 'dense' (DIVER) or 'hybrid'.")
    rerank_k: int | None = _knob("Top documents of the final hybrid list that are reranked (DIVER: 100).")
    pointwise: bool | None = _knob("Run the pointwise reranker (one 'Relevance score: X' call per document).")
    listwise: bool | None = _knob("Run the listwise reranker (numbered candidates, JSON ranking).")
    pointwise_blend: float | None = _knob("Pointwise: weight of the LLM score/10 vs the hybrid score (0.5).")
    pointwise_mode: str | None = _knob("Pointwise blend: 'reference' (DIVER) or 'renormalised'.")
    pointwise_weight: float | None = _knob("Merge: weight of pointwise ranks (0.6).")
    listwise_weight: float | None = _knob("Merge: weight of listwise ranks (0.4).")
    rerankers: list[str] | None = _knob(
        "Rerankers to run, by registry name: pointwise, listwise, groupwise, cross_encoder, ... ([] = none; "
        "None = the default)."
    )
    rerank_weights: dict[str, float] | None = _knob("Merge weight per reranker name (overrides <name>_weight).")
    groupwise_weight: float | None = _knob("Merge: weight of groupwise ranks (0.4).")
    groupwise_preset: str | None = _knob("Groupwise groups: 'reference' (10/10/2) or 'v3' (20/20/6).")
    window_size: int | None = _knob("Listwise sliding-window size when candidates exceed the context.")
    window_step: int | None = _knob("Listwise sliding-window step.")
    doc_tokens: int | None = _knob("Each reranked document is cut to this many tokens.")
    domain_kind: str | None = _knob(
        "Pointwise prompt: general, coding, math-theorem, math-problem or documentation."
    )
    query_index: int | None = _knob(
        "This query's 0-based position in a run of query_count queries (diver eval): GroupRank's "
        "shuffle='reference' replays the reference's one RNG stream over the run's queries."
    )
    query_count: int | None = _knob("Queries in the run (with query_index).")
    expander_model: str | None = _knob("Expander model name (overrides llm.expander.model).")
    reranker_model: str | None = _knob("Reranker model name (overrides llm.reranker.model).")
    llm_base_url: str | None = _knob("OpenAI-compatible base URL for both models (overrides both).")


_EXPANSION = {
    "rounds",
    "feedback_k",
    "n",
    "passage_tokens",
    "stop_overlap",
    "ask_sufficiency",
    "feedback_retrieval",
}
_RERANK = {
    "rerank_k", "pointwise", "listwise", "pointwise_blend", "pointwise_mode", "pointwise_weight", "listwise_weight",
    "window_size", "window_step", "doc_tokens", "domain_kind", "rerankers", "groupwise_weight",
}  # fmt: skip


def context_from(value: Context | dict[str, Any] | None) -> Context:
    """A ``Context`` from itself, a dict (HTTP API) or None; unknown keys are refused."""
    if value is None:
        return Context()
    if isinstance(value, Context):
        return value
    known = {f.name for f in fields(Context)}
    unknown = set(value) - known
    if unknown:
        raise ValueError(f"unknown context keys: {', '.join(sorted(unknown))}")
    return Context(**value)


def apply_context(settings: DiverSettings, ctx: Context) -> DiverSettings:
    """A validated copy of ``settings`` with the context's non-None overrides applied."""
    values = {f.name: getattr(ctx, f.name) for f in fields(Context)}
    exp = {k: v for k, v in values.items() if k in _EXPANSION and v is not None}
    rr = {k: v for k, v in values.items() if k in _RERANK and v is not None}
    llm = settings.llm.model_dump()
    for role, name in (("expander", ctx.expander_model), ("reranker", ctx.reranker_model)):
        if name is not None:
            llm[role]["model"] = name
        if ctx.llm_base_url is not None:
            llm[role]["base_url"] = ctx.llm_base_url
    if ctx.groupwise_preset is not None:
        rr["groupwise"] = {**settings.rerank.groupwise.model_dump(), "preset": ctx.groupwise_preset}
    if ctx.rerank_weights is not None:
        rr["weights"] = {**settings.rerank.weights, **ctx.rerank_weights}
    rerank = RerankSettings.model_validate({**settings.rerank.model_dump(), **rr})
    if rerank.window_step > rerank.window_size:
        raise ValueError("window_step must not exceed window_size")
    return settings.model_copy(
        update={
            "expansion": ExpansionSettings.model_validate({**settings.expansion.model_dump(), **exp}),
            "rerank": rerank,
            "llm": LLMSettings.model_validate(llm),
        }
    )
