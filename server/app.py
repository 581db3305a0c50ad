"""``build_server(settings)``: the MCPServer with DIVER's lifespan, tools, guide resource and prompt."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from diver.config import DiverSettings, load_settings
from diver.engine import Engine
from diver.llm import ChatFactory
from diver.server.state import make_lifespan
from diver.server.tools import register_tools

GUIDE = """\
# DIVER: which search tool to use

- `search` (fast, no LLM, ~50 ms): BM25 + embeddings fused. Use it first, for lookups where the
  question's words or meaning match the documents, and to browse a collection.
- `deep_search` (slow, LLM calls, seconds to minutes): the question needs knowledge it does not name,
  e.g. "which theorem solves this problem", a coding question whose answer is an API it never mentions.
  An LLM writes what a good answer would contain, searches again, then reranks. Use it when `search`
  results look off-topic, or for hard reasoning questions. Progress notifications keep the call alive.
- Then `get_document` for the full text of a promising hit.
- `index_documents` adds {id, text, metadata} objects; `index_path` reads files under the server's
  allowed roots. Re-indexing the same id replaces the document; unchanged documents cost nothing.
"""


def register_guide(server: MCPServer) -> None:
    """The guide as a resource (diver://guide) and a prompt (research)."""

    @server.resource("diver://guide", name="guide", description="When to use search vs deep_search.",
                     mime_type="text/markdown")  # fmt: skip
    def guide() -> str:
        return GUIDE

    @server.prompt(name="research", description="Answer a question from a DIVER collection.")
    def research(question: str, collection: str) -> str:
        return (
            f"{GUIDE}\nAnswer this question using the collection {collection!r}: start with `search`, "
            f"switch to `deep_search` if the hits do not contain what is needed, cite document ids.\n\n"
            f"Question: {question}"
        )


def build_server(
    settings: DiverSettings | None = None,
    *,
    engine: Engine | None = None,
    chat_factory: ChatFactory | None = None,
) -> MCPServer:
    """The DIVER MCP server. Its lifespan opens one Engine on ``settings.data_dir`` (or uses ``engine``)."""
    settings = settings or (engine.settings if engine is not None else load_settings())
    server = MCPServer(
        "diver",
        title="DIVER reasoning-intensive retrieval",
        instructions=GUIDE,
        version="0.1.0",
        lifespan=make_lifespan(settings, engine, chat_factory),
        log_level="WARNING",
    )
    register_tools(server)
    register_guide(server)
    return server
