"""Settings of the LLM stages' models and of query expansion."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from diver.config.base import Section


class ModelSettings(Section):
    """One chat model behind an OpenAI-compatible endpoint."""

    base_url: str | None = Field(None, description="e.g. http://127.0.0.1:8080/v1; None = OpenAI's API.")
    api_key: SecretStr | None = Field(None, description="API key; may be empty for local endpoints.")
    model: str | None = Field(None, description="Model name; None disables the stages using this model.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature (expander default 0.7).")
    max_tokens: int = Field(512, ge=1, le=131072, description="Max output tokens per call.")
    max_tokens_in_extra_body: bool = Field(
        False, description="Send max_tokens in extra_body (for servers that ignore max_completion_tokens)."
    )
    context_window: int | None = Field(
        None,
        ge=512,
        description="The model's context in tokens (sizes listwise windows and GroupRank's document cut). "
        "None = read from the endpoint once (vLLM's /v1/models max_model_len), else 8192.",
    )
    timeout_s: float = Field(60.0, gt=0, description="Seconds before one request is abandoned.")
    max_retries: int = Field(
        2, ge=0, le=10, description="Retries with exponential backoff on transient errors."
    )


class ExpanderModelSettings(ModelSettings):
    """The expander's defaults suit a reasoning model (DIVER: DeepSeek-R1-Distill, temperature 0.7): its
    ``<think>`` section alone often exceeds 512 tokens. DIVER's own runs allowed 32768."""

    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature (DIVER: 0.7).")
    max_tokens: int = Field(
        4096, ge=1, le=131072, description="Max output tokens per call, reasoning included (DIVER: 32768)."
    )


class LLMSettings(Section):
    expander: ExpanderModelSettings = Field(default_factory=ExpanderModelSettings)
    reranker: ModelSettings = Field(default_factory=ModelSettings)
    pointwise: ModelSettings = Field(
        default_factory=ModelSettings,
        description="The pointwise reranker's own model (DIVER used a local Qwen2.5-32B here); model unset = "
        "the reranker model.",
    )
    listwise: ModelSettings = Field(
        default_factory=ModelSettings,
        description="The listwise reranker's own model (DIVER used gemini-2.5-flash here); model unset = "
        "the reranker model.",
    )
    concurrency: int = Field(8, ge=1, le=512, description="Max LLM requests in flight.")
    cache: bool = Field(True, description="Cache every successful completion on disk.")


class PromptSettings(Section):
    dir: Path | None = Field(
        None,
        description="A folder whose <name>.txt files replace the shipped prompts/ templates of that name "
        "([system]/[user] sections, $placeholders), e.g. the reference's exact texts from your checkout of "
        "it; checked when an LLM is built: every data placeholder of the template must be there, no other.",
    )


class ExpansionSettings(Section):
    rounds: int = Field(
        2, ge=0, le=6, description="Expansion rounds (DIVER: 2). Capped at 6 so the graph loop is bounded."
    )
    feedback_k: int = Field(5, ge=0, le=50, description="Unseen passages shown to the LLM per round.")
    n: int = Field(2, ge=1, le=16, description="Completions sampled per round.")
    passage_tokens: int = Field(
        512, ge=16, le=8192, description="Feedback passages are cut to this many tokens."
    )
    passage_tokenizer: Literal["approx", "embedder"] = Field(
        "approx",
        description="Whose tokens passage_tokens counts: 'approx' (a fast estimate) or 'embedder' (the "
        "embedding model's tokenizer, as the reference's truncate_text; approx when the retriever has none).",
    )
    stop_overlap: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Stop early when top-10 overlap with the previous round is at least this.",
    )
    early_stop: bool = Field(
        True,
        description="Stop when the top-10 overlap reaches stop_overlap. False = run every round (the reference).",
    )
    refine_with: Literal["all", "last"] = Field(
        "all",
        description="What the refinement prompt shows of the previous round: 'all' its expansions, or 'last' "
        "its last sample only (the reference: accumulated_query_expansions[topic_id][-1]).",
    )
    ask_sufficiency: bool = Field(False, description="Ask the LLM whether the current top documents suffice.")
    feedback_retrieval: Literal["dense", "hybrid"] = Field(
        "dense",
        description="Which ranking of the current query feeds passages back to the expander: 'dense' "
        "(DIVER's QExpand) or 'hybrid' (the ranking the rounds retrieve with).",
    )


