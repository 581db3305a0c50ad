"""The MCP tools. ``register_tools(server)`` adds them to any MCPServer whose lifespan yields a ``ServerState``.

Each tool validates cheap arguments through its schema, runs blocking engine work in a worker thread and
returns a pydantic model (structured output). Errors are mapped by ``diver.server.errors``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from diver.documents import Document, make_document
from diver.errors import DiverError, InputError
from diver.hits import SearchResult
from diver.server.errors import in_thread, to_mcp_error
from diver.server.models import (
    CollectionsOutput,
    DeepSearchOutput,
    DeleteOutput,
    DocumentInput,
    DocumentOutput,
    IndexOutput,
    SearchOutput,
)
from diver.server.progress import ProgressReporter
from diver.server.state import ServerState, state_of

Collection = Annotated[str, Field(description="Collection name (see list_collections).")]
Query = Annotated[str, Field(description="What to look for, in natural language; may be long and detailed.")]
K = Annotated[int, Field(ge=1, le=1000, description="Number of documents to return.")]
Mode = Literal["hybrid", "bm25", "dense"]
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


def _search(state: ServerState, collection: str, query: str, k: int, mode: Mode) -> SearchResult:
    return state.engine.collection(collection).search(query, k=k, mode=mode)


def _validate_documents(state: ServerState, documents: list[DocumentInput]) -> list[Document]:
    limits = state.settings.limits
    if not documents:
        raise InputError("documents is empty: give at least one {id, text} object")
    if len(documents) > limits.max_documents_per_call:
        raise InputError(
            f"{len(documents)} documents in one call; the limit is {limits.max_documents_per_call}: split them"
        )
    docs, errors = [], []
    for item in documents:
        try:
            size = len(json.dumps(item.metadata, ensure_ascii=False).encode("utf-8"))
            if size > limits.max_metadata_bytes:
                raise InputError(f"document {item.id!r}: metadata is {size} bytes; the limit is "
                                 f"{limits.max_metadata_bytes}")  # fmt: skip
            docs.append(make_document(item.id, item.text, item.metadata, max_bytes=limits.max_document_bytes))
        except (InputError, TypeError, ValueError) as exc:
            errors.append(str(exc))
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise InputError("nothing was indexed: " + "; ".join(errors[:5]) + more)
    return docs


def _index_output(report: Any, skipped: list[str]) -> IndexOutput:
    data = report.model_dump()
    data["skipped"] = list(data.get("skipped") or []) + skipped
    return IndexOutput.model_validate(data)


async def _index(state: ServerState, ctx: Context, collection: str, docs: list[Document]) -> Any:
    reporter = ProgressReporter(ctx)

    def upsert() -> Any:
        col = state.engine.collection(collection, create=True)
        emit = reporter.emit_from_thread
        return col.upsert(
            docs, total=len(docs), on_progress=lambda d, t: emit({"event": "indexed", "done": d, "total": t})
        )

    return await reporter.run(lambda: in_thread(upsert), f"indexing {len(docs)} documents", "indexing done")


def register_tools(server: MCPServer) -> None:
    """Add DIVER's tools (search, deep_search, index_documents, index_path, list_collections,
    get_document, delete_documents) to ``server``."""

    @server.tool(annotations=READ_ONLY)
    async def search(
        collection: Collection, query: Query, ctx: Context, k: K = 10, mode: Mode = "hybrid"
    ) -> SearchOutput:
        """Fast retrieval without any LLM (about 50 ms): BM25 and embeddings fused into one ranking.

        Use it first, for keyword-like or factual lookups, and whenever speed matters. Each hit has the
        document id, a score, its title (first line), the best-matching passage and metadata; call
        get_document for the full text. mode: 'hybrid' (default), 'bm25' (exact terms) or 'dense'
        (meaning)."""
        result = await in_thread(_search, state_of(ctx), collection, query, k, mode)
        return SearchOutput.model_validate(result.model_dump())

    @server.tool(annotations=READ_ONLY)
    async def deep_search(
        collection: Collection,
        query: Query,
        ctx: Context,
        k: K = 10,
        max_rounds: Annotated[
            int, Field(ge=0, le=6, description="LLM query-expansion rounds (0 = none).")
        ] = 2,
        rerank: Annotated[bool, Field(description="Rerank the candidates with the LLM.")] = True,
    ) -> DeepSearchOutput:
        """Slow, thorough retrieval for reasoning-intensive questions (seconds to minutes; spends LLM calls).

        An LLM expands the query with the knowledge needed to answer it (theorems, concepts, APIs), searches
        again, then reranks the candidates. Use it when `search` misses: the answer needs a technique or
        principle the question does not name. Returns the ranking plus the expansions used, why the loop
        stopped, LLM calls and tokens spent, and which stages were skipped and why. Sends progress
        notifications while it works."""
        state = state_of(ctx)
        await in_thread(_search, state, collection, query, 1, "bm25")  # fail fast on bad input
        run = await in_thread(state.graph_runner)
        context: dict[str, Any] = {"k": k, "rounds": max_rounds}
        if not rerank:
            context.update(pointwise=False, listwise=False)

        async def work() -> Any:
            return await run(collection, query, state.settings, context=context, progress=reporter.emit,
                             chat_factory=state.chat_factory, engine=state.engine)  # fmt: skip

        reporter = ProgressReporter(ctx)
        try:
            result = await reporter.run(work, "deep search started: retrieving", "deep search done")
        except DiverError as exc:
            raise to_mcp_error(exc) from exc
        return DeepSearchOutput(
            collection=collection, query=query, hits=result.hits,
            expansions=[e.model_dump() for e in result.expansions], rounds=result.rounds,
            stop_reason=result.stop_reason, stages=result.stages, skipped=result.notes,
            fallbacks=result.fallbacks, llm_calls=result.llm_calls, tokens=result.tokens,
            timings_ms=result.timings_ms,
        )  # fmt: skip

    @server.tool(annotations=WRITES)
    async def index_documents(
        collection: Annotated[
            str, Field(description="Collection name; created if missing (3-63 of A-Z a-z 0-9 _ -).")
        ],
        documents: Annotated[list[DocumentInput], Field(description="Documents to add or replace, by id.")],
        ctx: Context,
    ) -> IndexOutput:
        """Add or replace documents in a collection (created if missing), then they are searchable at once.

        Re-sending an unchanged document costs nothing. Invalid documents are reported and nothing is
        indexed."""
        state = state_of(ctx)
        docs = await in_thread(_validate_documents, state, documents)
        return _index_output(await _index(state, ctx, collection, docs), [])

    @server.tool(annotations=WRITES)
    async def index_path(
        collection: Annotated[str, Field(description="Collection name; created if missing.")],
        path: Annotated[
            str,
            Field(
                description="A folder of .txt/.md files, one such file, or a .jsonl with "
                "{id, text, metadata} per line; under the server's allowed roots."
            ),
        ],  # fmt: skip
        ctx: Context,
    ) -> IndexOutput:
        """Index files from the server's disk (only under its configured allowed roots).

        Folder files get their relative path as id. Binary or non-UTF-8 files and broken .jsonl lines are
        skipped and listed in `skipped` with the reason (and line number)."""
        state = state_of(ctx)
        docs, skipped = await in_thread(state.read_path, path)
        if not docs:
            reasons = "; ".join(skipped[:5]) or "no .txt/.md files found"
            raise ToolError(f"no documents to index in {path!r}: {reasons}")
        return _index_output(await _index(state, ctx, collection, docs), skipped)

    @server.tool(annotations=READ_ONLY)
    async def list_collections(ctx: Context) -> CollectionsOutput:
        """List the collections that can be searched, with document counts and the embedding model."""
        return CollectionsOutput(collections=await in_thread(state_of(ctx).engine.list_collections))

    @server.tool(annotations=READ_ONLY)
    async def get_document(
        collection: Collection,
        id: Annotated[str, Field(description="Document id, as returned in search hits.")],
        ctx: Context,
        max_chars: Annotated[
            int, Field(ge=100, le=1_000_000, description="Cut the text to this length.")
        ] = 20000,
    ) -> DocumentOutput:
        """Fetch one document's full text and metadata (cut to max_chars)."""
        doc = await in_thread(lambda: state_of(ctx).engine.collection(collection).get(id))
        return DocumentOutput(collection=collection, id=doc.id, text=doc.text[:max_chars], metadata=doc.metadata,
                              chars=len(doc.text), truncated=len(doc.text) > max_chars)  # fmt: skip

    @server.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
    )
    async def delete_documents(
        collection: Collection,
        ids: Annotated[
            list[str], Field(min_length=1, max_length=1000, description="Ids of the documents to delete.")
        ],
        ctx: Context,
    ) -> DeleteOutput:
        """Delete documents by id. Unknown ids are ignored (`deleted` counts those removed)."""
        deleted = await in_thread(lambda: state_of(ctx).engine.collection(collection).delete(ids))
        return DeleteOutput(collection=collection, requested=len(ids), deleted=deleted)
