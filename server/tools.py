"""The MCP tools. ``register_tools(server, read_only)`` adds them to any MCPServer whose lifespan yields a
``ServerState``: the read tools here and in ``deep_tools.py``, the write tools of ``write_tools.py`` unless
the server is read-only (then they are not registered at all).

Each tool validates cheap arguments through its schema, runs blocking engine work in a worker thread and
returns a pydantic model (structured output). Errors are mapped by ``diver.server.errors``.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from diver.errors import InputError
from diver.server.errors import in_thread
from diver.server.models import ChunkOutput, CollectionsOutput, DocumentOutput, SearchOutput
from diver.server.schemas import (
    READ_ONLY,
    Collection,
    Expansions,
    Format,
    HitChars,
    K,
    MaxChars,
    Mode,
    Query,
    Source,
    Where,
)
from diver.server.search import run_search, search_output
from diver.server.state import ServerState, state_of
from diver.text.citations import cite, public_metadata


def register_tools(server: MCPServer, read_only: bool = False) -> None:
    """Add DIVER's tools to ``server``: search, deep_search, list_collections, get_document, and unless
    ``read_only`` index_documents, index_path, index_status, cancel_index, delete_documents."""
    from diver.server.deep_tools import register_deep_search
    from diver.server.write_tools import register_write_tools

    @server.tool(annotations=READ_ONLY)
    async def search(
        collection: Collection,
        query: Query,
        ctx: Context,
        k: K = 10,
        mode: Mode = "hybrid",
        expansions: Expansions = None,
        where: Where = None,
        source: Source = None,
        format: Annotated[Format, Field(description="'compact': numbered id/title/first tokens, to rerank "
                                        "yourself.")] = "full",  # fmt: skip
        max_chars: MaxChars = 20_000,
        hit_chars: HitChars = 1000,
    ) -> SearchOutput:
        """Fast retrieval, no LLM (~50 ms): BM25 and embeddings fused. Use it first.

        Hits: id, score, per-retriever `scores`, title, best passage (`highlight`), metadata; to cite:
        `source`, `span`, `chunk` (its neighbours: get_document(around_chunk=...)). `cut` says what was
        dropped to fit max_chars/hit_chars."""
        result = await in_thread(run_search, state_of(ctx), collection, query, k, mode, expansions, where, source)
        assembly = state_of(ctx).settings.search.assembly
        return search_output(result, format, max_chars, hit_chars, expansions, assembly)

    @server.tool(annotations=READ_ONLY)
    async def list_collections(ctx: Context) -> CollectionsOutput:
        """The searchable collections: document counts, embedding model; running folder watches."""
        state = state_of(ctx)
        watches = [f"{job.id} {job.collection} {job.path}" for job in state.jobs.watches()]
        return CollectionsOutput(collections=await in_thread(state.engine.list_collections), watches=watches)

    @server.tool(annotations=READ_ONLY)
    async def get_document(
        collection: Collection,
        id: Annotated[str, Field(description="Document id, as returned in search hits.")],
        ctx: Context,
        max_chars: Annotated[
            int, Field(ge=100, le=1_000_000, description="Cut the text to this length.")
        ] = 20000,
        around_chunk: Annotated[int | None, Field(ge=0, description="A hit's `chunk`: return that chunk and "
                                                  "its neighbours instead of the whole text.")] = None,  # fmt: skip
        window: Annotated[int, Field(ge=0, le=20, description="Neighbours on each side of around_chunk.")] = 1,
    ) -> DocumentOutput:
        """One document's text and metadata (cut to max_chars); with around_chunk only a hit's chunk and
        `window` chunks either side."""
        return await in_thread(_get_document, state_of(ctx), collection, id, max_chars, around_chunk, window)

    register_deep_search(server)
    if not read_only:
        register_write_tools(server)


def _get_document(state: ServerState, collection: str, doc_id: str, max_chars: int, around_chunk: int | None,
                  window: int) -> DocumentOutput:  # fmt: skip
    col = state.engine.collection(collection)
    doc = col.get(doc_id)
    out = DocumentOutput(collection=collection, id=doc.id, text=doc.text[:max_chars], metadata=public_metadata(doc.metadata),
                         chars=len(doc.text), truncated=len(doc.text) > max_chars)  # fmt: skip
    if around_chunk is None:
        return out
    count = col.chunk_count(doc_id)
    if around_chunk >= count:
        raise InputError(f"around_chunk={around_chunk} but document {doc_id!r} has {count} chunk(s) (0-{count - 1})")
    chunks, used, cut = [], 0, False
    for index, start, end, text in col.chunk_window(doc_id, around_chunk, window):
        room = max_chars - used
        if room <= 0:
            cut = True
            break
        where = cite(doc.text, doc.metadata, start, end)
        chunks.append(ChunkOutput(index=index, start=start, end=end, text=text[:room], lines=where.lines,
                                  page=where.page, heading=where.heading))  # fmt: skip
        cut = cut or len(text) > room
        used += min(len(text), room)
    return out.model_copy(update={"text": "", "chunks": chunks, "chunk_count": count, "truncated": cut})
