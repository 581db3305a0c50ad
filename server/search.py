"""Search as the MCP tools run it: query assembly with the agent's expansions, the response budget, and
one round of the agent-driven loop (used by ``deep_search`` and its MCP-sampling path)."""

from __future__ import annotations

from typing import Any

from diver.hits import SearchResult
from diver.server.agent_loop import (
    TOP_N,
    RoundState,
    decode_round,
    encode_round,
    feedback_text,
    select_feedback,
    verdict,
)
from diver.server.budget import compact, fit_hits
from diver.server.models import DeepSearchOutput, Feedback, SearchOutput
from diver.server.state import ServerState
from diver.stages.assembly_plan import DEFAULT_VARIANT, clean
from diver.stages.assembly_search import AssemblyTarget, search_assembled

COMPACT_TOKENS = 60
FEEDBACK_TOKENS = 120


def run_search(state: ServerState, collection: str, query: str, k: int, mode: str,
               expansions: list[str] | None = None, where: dict[str, Any] | None = None,
               source: str | None = None) -> SearchResult:  # fmt: skip
    """Search with the query and the agent's expansions (query assembly), filters before the top-k cut."""
    target = AssemblyTarget.for_collection(state.engine.collection(collection))
    [result] = search_assembled(target, [query], [expansions or []], k=k, mode=mode,
                                variant=state.settings.search.assembly, where=where, source=source)  # fmt: skip
    return result


def search_output(result: SearchResult, fmt: str, max_chars: int, hit_chars: int,
                  expansions: list[str] | None, assembly: str = DEFAULT_VARIANT) -> SearchOutput:  # fmt: skip
    data: dict[str, Any] = {"collection": result.collection, "query": result.query, "mode": result.mode,
                            "notes": result.notes, "timings_ms": result.timings_ms}  # fmt: skip
    if expansions:
        data["assembly"] = assembly
    if fmt == "compact":
        data["candidates"], data["cut"] = compact(result.hits, COMPACT_TOKENS, max_chars, hit_chars)
    else:
        data["hits"], data["cut"] = fit_hits(result.hits, hit_chars, max_chars)
    return SearchOutput.model_validate(data)


def agent_round(state: ServerState, collection: str, query: str, k: int, expansions: list[str] | None,
                token: str | None, where: dict[str, Any] | None, source: str | None, max_rounds: int,
                reasoner: str, why: str) -> tuple[DeepSearchOutput, list[Any]]:  # fmt: skip
    """One round of the agent-driven loop: retrieve (with the expansions), pick unseen feedback, decide."""
    prev = decode_round(token, collection, query)
    parts = clean(expansions)
    round_no = prev.round + 1 if parts else prev.round
    feedback_k = state.settings.expansion.feedback_k
    depth = min(state.settings.limits.max_k, max(k, TOP_N) + feedback_k + len(prev.seen))
    result = run_search(state, collection, query, depth, "hybrid", parts, where, source)
    hits = result.hits
    chosen = select_feedback(hits, prev.seen, feedback_k) if round_no < max_rounds else []
    top = [h.id for h in hits[:TOP_N]]
    expansion = state.settings.expansion
    stop_overlap = expansion.stop_overlap if expansion.early_stop else float("inf")  # reference: every round
    decided = verdict(prev, round_no, top, bool(parts), stop_overlap, max_rounds, len(chosen))
    if decided.converged:
        chosen = []
    new = RoundState(round_no, top, prev.seen + [h.id for h in chosen], prev.binding)
    out = DeepSearchOutput(
        collection=collection, query=query, hits=[], expansions=[], rounds=round_no,
        stop_reason=decided.next_step if decided.converged else "", stages=["retrieve"], llm_calls=0,
        tokens=0, reasoner=reasoner, reasoner_why=why, round=encode_round(new), round_no=round_no,
        converged=decided.converged, overlap=decided.overlap, next_step=decided.next_step,
        feedback=[Feedback(id=h.id, title=h.title, text=feedback_text(h, FEEDBACK_TOKENS)) for h in chosen],
        skipped=["rerank: not run in the agent loop (rerank the hits yourself: search format='compact')"],
        timings_ms=result.timings_ms,
    )  # fmt: skip
    if parts:
        out.skipped.insert(0, f"query assembly: {len(parts)} expansion(s) retrieved with the query")
    return out, hits[:k]
