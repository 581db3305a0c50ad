"""What the server's lifespan holds: one Engine (a data directory is locked per process) and the settings."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer

from diver.config import DiverSettings
from diver.errors import MissingDependency, StateError, missing_dependency
from diver.index.engine import Engine
from diver.index.jobs import JobManager
from diver.index.sync import Source, read_source
from diver.llm.client import ChatFactory
from diver.service import open_engine

log = logging.getLogger(__name__)
JOB_BATCH = 64
"""Documents per committed batch of a background indexing job (the granularity of cancel_index)."""


@dataclass
class ServerState:
    engine: Engine
    settings: DiverSettings
    chat_factory: ChatFactory | None = None
    jobs: JobManager = field(init=False)

    def __post_init__(self) -> None:
        self.jobs = JobManager(self.engine, min(JOB_BATCH, self.settings.store.write_batch_size))

    @property
    def has_endpoint(self) -> bool:
        """An LLM endpoint is configured for expansion or reranking (the server-side reasoner)."""
        return bool(self.settings.llm.expander.model or self.settings.llm.reranker.model)

    def graph_runner(self) -> Callable[..., Any]:
        """``arun_deep_search`` (imported at start-up by ``warm``; MissingDependency without the extra)."""
        try:
            from diver.graph.run import arun_deep_search
        except ImportError as exc:
            raise missing_dependency(exc, "langgraph", "llm", "deep_search") from exc
        return arun_deep_search

    def read_path(self, path: str, include: list[str] | None = None, exclude: list[str] | None = None,
                  scope: frozenset[str] | None = None) -> Source:  # fmt: skip
        """A folder's ``FolderRead`` (synced; ``scope``: only these relative paths) or a file's documents."""
        limits = self.settings.limits
        return read_source(
            path,
            allowed_roots=[Path(p) for p in self.settings.server.allowed_roots],
            max_bytes=limits.max_document_bytes,
            max_metadata_bytes=limits.max_metadata_bytes,
            max_documents=self.settings.server.max_path_documents,
            include=include,
            exclude=exclude,
            scope=scope,
            max_file_bytes=limits.max_file_bytes,
        )

    def warm(self) -> None:
        """Load the embedder, the BM25 indexes and the graph now, so the first call pays nothing."""
        started = time.perf_counter()
        embedder = self.engine.embedder
        embedder.embed_queries(["warm-up"])  # first forward pass allocates; do it before any client waits
        for name in self.engine.collection_names():
            try:
                self.engine.collection(name).warm()
            except StateError as exc:  # one damaged collection must not take the others down
                log.warning("collection %s not warmed: %s", name, exc)
        try:
            self.graph_runner()
        except MissingDependency as exc:
            log.warning("deep_search unavailable: %s", exc)
        log.info("DIVER MCP server ready in %.1fs (embedder %s)", time.perf_counter() - started, embedder.id)


def state_of(ctx: Context) -> ServerState:
    state = ctx.request_context.lifespan_context
    if not isinstance(state, ServerState):
        raise StateError("the server was started without DIVER's lifespan (use build_server)")
    return state


def make_lifespan(
    settings: DiverSettings, engine: Engine | None = None, chat_factory: ChatFactory | None = None
) -> Callable[[MCPServer], Any]:
    """A lifespan opening one Engine for the process (or using ``engine``), warmed before serving."""

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[ServerState]:
        owned = engine is None
        opened = engine if engine is not None else await anyio.to_thread.run_sync(open_engine, settings)
        try:
            state = ServerState(opened, settings, chat_factory)
            await anyio.to_thread.run_sync(state.warm)
            try:
                yield state
            finally:
                await anyio.to_thread.run_sync(state.jobs.shutdown)
        finally:
            if owned:
                opened.close()

    return lifespan
