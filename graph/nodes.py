"""Graph nodes: each resolves its resources, calls one core function and writes the result to the state.

Blocking work (retrieval, document reads, client construction) runs in worker threads so the event loop
(e.g. ``langgraph dev``) stays free. Progress goes to LangGraph's custom stream as small dict events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from diver.errors import DiverError, InputError, LLMError
from diver.graph.context import Context, context_from
from diver.graph.decisions import TOP_N, rerank_stages, stop_reason
from diver.graph.resources import Provider, Resources
from diver.graph.state import DeepSearchState
from diver.hits import SearchHit
from diver.llm.client import LLMUsage
from diver.stages.expansion import dense_feedback_hits, expand_round, select_feedback, spanner_cut
from diver.stages.progress import describe_event
from diver.stages.rerank.choice import choose_rerankers
from diver.stages.retriever import search_with_expansions
from diver.stages.sufficiency import ask_sufficiency
from diver.text.tokens import truncate_tokens


def emit(event: dict[str, Any]) -> None:
    """Send a progress event, with its ``message`` line, on the custom stream (no-op when nobody listens)."""
    get_stream_writer()({**event, "message": describe_event(event)})


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 1)


def hits_of(state: DeepSearchState) -> list[SearchHit]:
    return [SearchHit.model_validate(h) for h in state.get("hits") or []]


class Nodes:
    """The node functions, bound to a ``Provider`` of settings, retriever and LLMs."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    async def _resources(self, runtime: Runtime[Context]) -> tuple[Context, Resources]:
        ctx = context_from(runtime.context)
        return ctx, await asyncio.to_thread(self.provider.resolve, ctx)

    async def retrieve(self, state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Hybrid search with the current query (round 0: the original query)."""
        ctx, res = await self._resources(runtime)
        query = state.get("current_query") or state.get("query", "")
        if not state.get("query", "").strip():
            raise InputError("the query is empty")
        if len(state["query"]) > res.settings.limits.max_query_chars:
            raise InputError(f"the query is longer than {res.settings.limits.max_query_chars} characters")
        depth = max(ctx.k, res.settings.rerank.rerank_k, TOP_N)
        started = time.perf_counter()
        expansions = _last_good_expansions(state) if state.get("round", 0) >= 1 else []
        if expansions:  # query assembly when the retriever can (Provider.resolve: search.assembly)
            hits = await asyncio.to_thread(
                search_with_expansions, res.retriever, state["query"], expansions, depth
            )
        else:
            hits = await asyncio.to_thread(res.retriever.search, query, depth)
        elapsed = _ms(started)
        emit({"event": "retrieved", "round": state.get("round", 0), "hits": len(hits), "ms": elapsed})
        return {
            "hits": [h.model_dump() for h in hits],
            "previous_top": [h["id"] for h in (state.get("hits") or [])[:TOP_N]],
            "current_query": query,
            "round": state.get("round", 0),
            "timings_ms": {"retrieve": elapsed},
        }

    async def decide(self, state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Stop or loop: max rounds, convergence of the top-10, failed expansion, optional LLM check."""
        ctx, res = await self._resources(runtime)
        reason = stop_reason(dict(state), res.settings, ctx.expand, res.expander is not None)
        notes: list[str] = []
        update: dict[str, Any] = {}
        if not reason and state.get("round", 0) >= 1 and res.settings.expansion.ask_sufficiency:
            judge = res.reranker or res.expander
            usage = LLMUsage()
            started = time.perf_counter()
            texts = [truncate_tokens(h.highlight or h.title, 256) for h in hits_of(state)[:5]]
            try:
                await asyncio.to_thread(judge.prepare)
                verdict = await ask_sufficiency(judge, state["query"], texts, usage)
            except (LLMError, DiverError) as exc:
                verdict = None
                notes.append(f"sufficiency check failed: {exc}")
            if verdict:
                reason = "sufficient: the LLM judged the top documents enough"
            update["usage"] = {"sufficiency": usage.model_dump()}
            update["timings_ms"] = {"sufficiency": _ms(started)}
        if reason.startswith("no expander") or reason.startswith("expansion round"):
            notes.append(f"expansion: {reason}")
        plan, skipped = rerank_stages(res.settings, res.reranker is not None) if reason else ([], [])
        emit(
            {"event": "decision", "round": state.get("round", 0), "stop_reason": reason or None, "next": plan}
        )
        if reason:
            update["rerank_why"] = choose_rerankers(res.settings.rerank, res.reranker is not None).why
        return {**update, "stop_reason": reason, "plan": plan, "notes": notes + skipped}

    async def expand(self, state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
        """One DIVER-QExpand round over the previous round's hits."""
        ctx, res = await self._resources(runtime)
        assert res.expander is not None  # decide() routes here only with an expander
        round_no = state.get("round", 0) + 1
        emit({"event": "round_started", "round": round_no})
        started = time.perf_counter()
        settings = res.settings.expansion
        last_query = state.get("current_query") or state["query"]
        seen = state.get("seen_ids") or []
        hits, notes = await _feedback_ranking(
            res, state, last_query, settings.feedback_k + len(seen), round_no
        )
        ids = select_feedback(hits, seen, settings.feedback_k)
        texts = await asyncio.to_thread(_read_texts, res, ids, hits)
        previous = _last_good_expansions(state)
        usage = LLMUsage()
        try:
            await asyncio.to_thread(res.expander.prepare)
            outcome = await expand_round(
                res.expander, state["query"], hits, texts.__getitem__, state.get("seen_ids") or [],
                previous, round_no, settings, usage, passage_cut(res, settings.passage_tokenizer, notes),
            )  # fmt: skip
            record = outcome.model_dump()
        except DiverError as exc:
            record = {"round": round_no, "feedback_ids": ids, "expansions": [], "query": state["query"],
                      "failures": [str(exc)]}  # fmt: skip
        if record["failures"]:
            notes.append(f"expansion round {round_no}: {len(record['failures'])} failed sample(s)")
        if record.get("truncated"):
            notes.append(
                f"expansion round {round_no}: {record['truncated']} reply(ies) cut inside <think> by "
                f"llm.expander.max_tokens={res.expander.settings.max_tokens}; raise it for this model"
            )
        if not record["expansions"]:  # keep the last good query and its ranking; decide() stops the loop
            record["query"] = last_query
            notes.append(
                f"expansion round {round_no} failed: kept the query and ranking of round {round_no - 1}"
            )
        elapsed = _ms(started)
        emit({"event": "stage_done", "stage": "expand", "round": round_no, "ms": elapsed,
              "llm_calls": usage.calls, "failures": len(record["failures"])})  # fmt: skip
        return {
            "round": round_no,
            "current_query": record["query"],
            "expansions": [record],
            "seen_ids": record["feedback_ids"],
            "usage": {"expand": usage.model_dump()},
            "timings_ms": {"expand": elapsed},
            "notes": notes,
        }


async def _feedback_ranking(
    res: Resources, state: DeepSearchState, query: str, depth: int, round_no: int
) -> tuple[list[SearchHit], list[str]]:
    """The ranking whose unseen top passages go to the expander: dense (DIVER) or the round's hybrid."""
    hits = hits_of(state)
    if res.settings.expansion.feedback_retrieval == "hybrid":
        return hits, []
    try:
        dense = await asyncio.to_thread(dense_feedback_hits, res.retriever, query, depth)
    except DiverError as exc:
        return hits, [f"expansion feedback: dense retrieval failed ({exc}); the hybrid ranking was used"]
    if dense is None:
        note = "expansion feedback: the retriever has no dense mode; its hybrid ranking was used"
        return hits, [note] if round_no == 1 else []
    return dense, []


def passage_cut(res: Resources, tokenizer: str, notes: list[str]) -> Callable[[str, int], str]:
    """How feedback passages are cut: approximate tokens, or the embedding model's tokenizer (the
    reference's) when the retriever's collection has an embedder with one."""
    if tokenizer == "embedder":
        engine = getattr(getattr(res.retriever, "collection", None), "engine", None)
        spanner = getattr(getattr(engine, "embedder", None), "spanner", None)
        if spanner is not None:
            return spanner_cut(spanner)
        notes.append("expansion: the retriever has no embedder tokenizer; passages cut by approximate tokens")
    return truncate_tokens


def _last_good_expansions(state: DeepSearchState) -> list[str]:
    """The expansions of the latest round that produced any (the refinement prompt builds on them)."""
    for record in reversed(state.get("expansions") or []):
        if record.get("expansions"):
            return list(record["expansions"])
    return []


def _read_texts(res: Resources, ids: list[str], hits: list[SearchHit]) -> dict[str, str]:
    by_id = {h.id: h for h in hits}
    texts: dict[str, str] = {}
    for doc_id in ids:
        try:
            texts[doc_id] = res.retriever.get_text(doc_id)
        except DiverError:
            texts[doc_id] = by_id[doc_id].highlight if doc_id in by_id else ""
    return texts
