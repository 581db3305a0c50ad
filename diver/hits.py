"""Result types shared by the engine, the pipeline and the adapters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

SearchMode = Literal["bm25", "dense", "hybrid"]


class SearchHit(BaseModel):
    """One ranked document."""

    id: str
    rank: int = Field(description="1-based rank.")
    score: float = Field(description="Score of the mode that ranked it (hybrid: fused score in [0, 1]).")
    title: str = Field("", description="First line of the document.")
    highlight: str = Field("", description="The best-scoring chunk of the document.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    scores: dict[str, float] = Field(default_factory=dict, description="Per-retriever scores (bm25, dense).")
    source: str | None = Field(None, description="Citable source: metadata source, path or url.")
    chunk: int | None = Field(None, description="Index of the best-scoring chunk (the highlight).")
    span: tuple[int, int] | None = Field(
        None, description="Character span [start, end) of the highlight within the document text."
    )
    # where the best chunk lies in its file (index_path): first-last line, PDF page, "Guide > Install"
    lines: tuple[int, int] | None = None
    page: int | None = None
    heading: str | None = None


class SearchResult(BaseModel):
    """A ranked list plus what the caller should know about how it was made."""

    collection: str
    query: str
    mode: SearchMode
    k: int
    hits: list[SearchHit]
    notes: list[str] = Field(default_factory=list, description="e.g. 'k capped from 5000 to 1000'.")
    timings_ms: dict[str, float] = Field(default_factory=dict)
    dense_path: str | None = Field(
        None,
        description="How dense candidates were found: 'exact' (every chunk scored from the in-memory matrix), "
        "'hnsw' (chroma's ANN index), 'exact-filter' (a selective filter's chunks scored exactly); None "
        "without dense retrieval.",
    )
    query_prompt: str | None = Field(
        None,
        description="Where the query instruction of the dense side came from ('model prompts: query', "
        "'embedding.query_prefix', 'preset: ...' or 'none'); None without dense retrieval.",
    )


class CollectionInfo(BaseModel):
    name: str
    documents: int
    chunks: int
    embedder: str
    dimensions: int
    chunk_tokens: int
    created_at: str
    embedding_backend: str = ""  # the engine's embedding runtime (embedding.backend; auto's pick)


class IndexReport(BaseModel):
    """What an indexing call did."""

    collection: str
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    chunks: int = 0
    duplicate_ids: list[str] = Field(
        default_factory=list, description="Ids seen twice in one batch (last won)."
    )
    skipped: list[str] = Field(default_factory=list, description="Inputs skipped, each with its reason.")
    seconds: float = 0.0
