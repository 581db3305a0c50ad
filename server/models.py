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


class Candidate(BaseModel):
    """A numbered candidate (format='compact'), to rerank yourself."""

    n: int = Field(description="1-based number, to answer with a ranked list of numbers.")
    id: str
    title: str = ""
    text: str = Field("", description="The first tokens of the best-matching passage.")
    source: str | None = None


class Feedback(BaseModel):
    """An unseen top passage, to read before writing an expansion."""

    id: str
    title: str = ""
    text: str


class SearchOutput(BaseModel):
    """Ranked documents of a fast hybrid search."""

    collection: str
    query: str
    mode: str
    hits: list[SearchHit] = Field(
        default_factory=list,
        description="Best first; `highlight` is the best-matching passage; cite `source` with `lines` (first-"
        "last), `page` or `heading` of that passage. Empty with format='compact'.",
    )
    candidates: list[Candidate] = Field(default_factory=list, description="format='compact' only.")
    assembly: str | None = Field(None, description="How query and expansions were combined, if any.")
    cut: list[str] = Field(default_factory=list, description="What was cut or dropped to fit the budgets.")
    notes: list[str] = Field(default_factory=list, description="Adjustments made, e.g. k capped.")
    timings_ms: dict[str, float] = Field(default_factory=dict)


class ExpansionOutput(BaseModel):
    """One LLM query-expansion round."""

    round: int
    expansions: list[str] = Field(description="Texts the LLM wrote to enrich the query.")
    feedback_ids: list[str] = Field(description="Documents shown to the LLM as feedback.")
    failures: list[str] = Field(default_factory=list)


class DeepSearchOutput(BaseModel):
    """Ranked documents of the DIVER loop, and how they were found."""

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
    reasoner: str = Field(
        description="Who wrote expansions: agent (you), endpoint (server LLM), sampling (your client's model), "
        "none."
    )
    reasoner_why: str = Field(description="Why that reasoner ran.")
    rerankers: list[str] = Field(default_factory=list, description="Rerankers that ran, in order.")
    rerankers_why: str = Field("", description="Why these rerankers (default, asked for, none configured).")
    round: str = Field("", description="Opaque token: pass it back with your next expansions.")
    round_no: int = Field(0, description="Round just finished (0 = plain retrieval).")
    converged: bool = Field(False, description="True when the loop should stop (top-10 stable or done).")
    overlap: float | None = Field(None, description="Top-10 overlap with the previous round.")
    feedback: list[Feedback] = Field(default_factory=list, description="Unseen top passages to read next.")
    next_step: str = Field("", description="What to do next.")
    cut: list[str] = Field(default_factory=list, description="What was cut or dropped to fit the budgets.")
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


class IndexPathOutput(IndexOutput):
    """``index_path``: the result when done within a few seconds, else a background job to poll."""

    done: bool = Field(description="False: still running as `job`; poll index_status(job).")
    job: str | None = Field(None, description="Background job id (index_status / cancel_index).")
    moved: int = Field(0, description="Renamed files (vectors kept).")
    removed: int = Field(0, description="Files gone from the folder.")
    changes: list[str] | None = Field(None, description="dry_run: the changes.")


class JobOutput(BaseModel):
    """Progress of a background indexing job (counts so far)."""

    job: str
    collection: str
    path: str
    state: str = Field(description="running, done, failed, cancelled; a watch: watching, stopped.")
    files: int = Field(description="Documents read from the path (a sync: plus deletions).")
    documents_done: int
    added: int
    replaced: int
    unchanged: int
    moved: int = 0
    removed: int = 0
    chunks: int
    rate_docs_per_s: float
    eta_s: float | None = Field(description="Seconds left at the current rate (None when unknown).")
    elapsed_s: float
    errors: list[str] = Field(default_factory=list, description="Files skipped and failures so far.")


class CollectionsOutput(BaseModel):
    collections: list[CollectionInfo]
    watches: list[str] = Field(
        default_factory=list, description="Watched folders: 'job collection path' (stop: cancel_index(job))."
    )


class ChunkOutput(BaseModel):
    index: int
    start: int = Field(description="Character offset of the chunk in the document text.")
    end: int
    text: str
    lines: tuple[int, int] | None = None
    page: int | None = None
    heading: str | None = None


class DocumentOutput(BaseModel):
    collection: str
    id: str
    text: str
    metadata: dict[str, Any]
    chars: int = Field(description="Length of the full text in characters.")
    truncated: bool = Field(description="True when `text` was cut to max_chars.")
    chunks: list[ChunkOutput] = Field(
        default_factory=list, description="around_chunk only: that chunk and its neighbours; `text` is empty."
    )
    chunk_count: int | None = Field(None, description="around_chunk only: chunks in the document.")


class DeleteOutput(BaseModel):
    collection: str
    requested: int
    deleted: int = Field(description="Documents that existed and were removed.")
