"""Structured outputs and inputs of the MCP tools (small, JSON-schema friendly pydantic models)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from diver.hits import CollectionInfo, SearchHit


class DocumentInput(BaseModel):
    """One document to index."""

    id: str = Field(description="Unique id within the collection; indexing the same id again replaces it.")
    text: str = Field(description="The document text (the first line is shown as its title).")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Optional JSON metadata, returned with hits."
    )


class SearchOutput(BaseModel):
    """Ranked documents of a fast hybrid search."""

    collection: str
    query: str
    mode: str
    hits: list[SearchHit] = Field(description="Best first; `highlight` is the best-matching passage.")
    notes: list[str] = Field(default_factory=list, description="Adjustments made, e.g. k capped.")
    timings_ms: dict[str, float] = Field(default_factory=dict)


class ExpansionOutput(BaseModel):
    """One LLM query-expansion round."""

    round: int
    expansions: list[str] = Field(description="Texts the LLM wrote to enrich the query.")
    feedback_ids: list[str] = Field(description="Documents shown to the LLM as feedback.")
    failures: list[str] = Field(default_factory=list)


class DeepSearchOutput(BaseModel):
    """Ranked documents of the full DIVER pipeline, with the trace of how they were found."""

    collection: str
    query: str
    hits: list[SearchHit] = Field(description="Best first, after expansion and reranking.")
    expansions: list[ExpansionOutput] = Field(default_factory=list)
    rounds: int = Field(description="Expansion rounds run.")
    stop_reason: str = Field(description="Why the expansion loop stopped.")
    stages: list[str] = Field(description="Stages that ran, in order.")
    skipped: list[str] = Field(default_factory=list, description="Stages skipped or degraded, and why.")
    fallbacks: list[str] = Field(
        default_factory=list, description="Stages that fell back to the prior order."
    )
    llm_calls: int = Field(description="LLM requests sent.")
    tokens: int = Field(description="Prompt + completion tokens spent.")
    timings_ms: dict[str, float] = Field(default_factory=dict)


class IndexOutput(BaseModel):
    """What an indexing call did."""

    collection: str
    added: int
    replaced: int
    unchanged: int = Field(description="Documents already indexed with identical content.")
    chunks: int = Field(description="Passages embedded.")
    duplicate_ids: list[str] = Field(default_factory=list, description="Ids given twice (the last won).")
    skipped: list[str] = Field(default_factory=list, description="Inputs not indexed, each with its reason.")
    seconds: float


class CollectionsOutput(BaseModel):
    collections: list[CollectionInfo]


class DocumentOutput(BaseModel):
    collection: str
    id: str
    text: str
    metadata: dict[str, Any]
    chars: int = Field(description="Length of the full text in characters.")
    truncated: bool = Field(description="True when `text` was cut to max_chars.")


class DeleteOutput(BaseModel):
    collection: str
    requested: int
    deleted: int = Field(description="Documents that existed and were removed.")
