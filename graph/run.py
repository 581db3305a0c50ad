"""Run one deep search from Python: the entry point of the CLI, the MCP server and the eval harness."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, Field

from diver.config import DiverSettings
from diver.graph.context import Context, context_from
from diver.graph.graph import build_graph
from diver.graph.rerank_more import rerankers_ran
from diver.graph.rerank_nodes import ran_results
from diver.graph.resources import Provider
from diver.hits import SearchHit
from diver.llm.client import ChatFactory, LLMUsage
from diver.stages.expansion import ExpansionRound

ProgressCallback = Callable[[dict[str, Any]], None]
"""Receives each progress event: {'event': 'retrieved'|'decision'|'round_started'|'stage_started'|
'llm_progress'|'stage_done', ...}."""


class DeepSearchResult(BaseModel):
    """Ranked documents plus the trace of how they were found."""

    query: str
    collection: str
    hits: list[SearchHit]
    expansions: list[ExpansionRound] = Field(default_factory=list)
    final_query: str = Field("", description="The query of the last retrieval.")
    rounds: int = Field(0, description="Expansion rounds run.")
    stop_reason: str = ""
    stages: list[str] = Field(default_factory=list, description="Stages that ran, in order.")
    notes: list[str] = Field(default_factory=list, description="Degraded or skipped stages, with reasons.")
    llm_calls: int = 0
    tokens: int = Field(0, description="Prompt + completion tokens of live LLM calls.")
    usage: dict[str, LLMUsage] = Field(default_factory=dict, description="LLM usage per stage.")
    parse_failures: dict[str, int] = Field(default_factory=dict, description="Unparseable replies per stage.")
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Stages that fell back: 'expand' (a failed round; the last good query and ranking "
        "kept), 'listwise' (no usable ranking; the prior order kept).",
    )
    timings_ms: dict[str, float] = Field(default_factory=dict)
    rerankers: list[str] = Field(default_factory=list, description="Rerankers that ran, in order.")
    rerankers_why: str = Field("", description="Why these rerankers (default, asked for, none configured).")

    @property
    def retrieval_only(self) -> bool:
        """No expansion round and no reranker (of any kind in the registry) ran."""
        return not self.expansions and not self.rerankers


def result_from_state(state: dict[str, Any], collection: str, wall_ms: float) -> DeepSearchResult:
    """Assemble the public result from the graph's final state."""
    usage = {stage: LLMUsage.model_validate(u) for stage, u in (state.get("usage") or {}).items()}
    total = LLMUsage()
    for stage_usage in usage.values():
        total = total.plus(stage_usage)
    results = ran_results(state)
    failures = {"expand": sum(len(r.get("failures", [])) for r in state.get("expansions") or [])}
    failures.update({name: result.parse_failure_count() for name, result in results.items()})
    stages = ["retrieve"] + ["expand"] * len(state.get("expansions") or [])
    ran = rerankers_ran(state)
    stages += ran
    return DeepSearchResult(
        query=state["query"],
        collection=collection,
        hits=[SearchHit.model_validate(h) for h in state.get("results") or []],
        expansions=[ExpansionRound.model_validate(r) for r in state.get("expansions") or []],
        final_query=state.get("current_query", state["query"]),
        rounds=int(state.get("round", 0)),
        stop_reason=state.get("stop_reason", ""),
        stages=stages,
        notes=list(state.get("notes") or []),
        llm_calls=total.calls,
        tokens=total.total_tokens,
        usage=usage,
        parse_failures=failures,
        fallbacks=_fallbacks(state, results),
        timings_ms={**(state.get("timings_ms") or {}), "total": wall_ms},
        rerankers=ran,
        rerankers_why=state.get("rerank_why", ""),
    )


def _fallbacks(state: dict[str, Any], results: dict[str, Any]) -> list[str]:
    """'expand' when a round failed (the last good query and ranking were kept); a reranker's name when it
    gave no ranking (listwise: the prior order was kept)."""
    out = []
    if any(not r.get("expansions") for r in state.get("expansions") or []):
        out.append("expand")
    out.extend(name for name, result in results.items() if result.fell_back())
    return out


async def arun_deep_search(
    collection: str | Any,
    query: str,
    settings: DiverSettings | None = None,
    *,
    context: Context | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    chat_factory: ChatFactory | None = None,
    engine: Any | None = None,
) -> DeepSearchResult:
    """Deep search ``query`` in ``collection``: an engine ``Collection``, any ``Retriever``, or a name
    (opened from ``engine`` when given, else from ``settings.data_dir``; a process that already holds an
    ``Engine`` must pass it or the collection, since a data directory is locked per Engine).
    ``context`` overrides knobs for this run (see ``Context``)."""
    ctx = context_from(context)
    if settings is None and engine is not None:
        settings = engine.settings
    if isinstance(collection, str) and engine is not None:
        ctx = replace(ctx, collection=collection)
        provider = Provider(
            settings=settings, retriever=await asyncio.to_thread(engine.collection, collection), chat_factory=chat_factory
        )
        name = collection
    elif isinstance(collection, str):
        ctx = replace(ctx, collection=collection)
        provider = Provider(settings=settings, chat_factory=chat_factory)
        name = collection
    else:
        provider = Provider(settings=settings, retriever=collection, chat_factory=chat_factory)
        name = ctx.collection or str(getattr(collection, "name", ""))
    graph = build_graph(provider)
    started = time.perf_counter()
    final: dict[str, Any] = {}
    async for mode, chunk in graph.astream({"query": query}, context=ctx, stream_mode=["custom", "values"]):
        if mode == "custom" and progress is not None:
            progress(chunk)
        elif mode == "values":
            final = chunk
    return result_from_state(final, name, round((time.perf_counter() - started) * 1000.0, 1))


def run_deep_search(
    collection: str | Any,
    query: str,
    settings: DiverSettings | None = None,
    *,
    context: Context | dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    chat_factory: ChatFactory | None = None,
    engine: Any | None = None,
) -> DeepSearchResult:
    """Synchronous ``arun_deep_search`` (must not be called from a running event loop)."""
    return asyncio.run(
        arun_deep_search(
            collection,
            query,
            settings,
            context=context,
            progress=progress,
            chat_factory=chat_factory,
            engine=engine,
        )
    )
