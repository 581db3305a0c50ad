"""State of one deep search. Values are plain JSON-able data so any checkpointer or HTTP API can carry them.

Reducers: expansions, feedback ids and notes accumulate; usage and timings are summed per stage; reranker
results are collected by name.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


def add_usage(left: dict[str, dict[str, int]], right: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Sum LLM usage counters per stage."""
    merged = {stage: dict(counts) for stage, counts in (left or {}).items()}
    for stage, counts in (right or {}).items():
        into = merged.setdefault(stage, {})
        for name, value in counts.items():
            into[name] = into.get(name, 0) + value
    return merged


def add_timings(left: dict[str, float], right: dict[str, float]) -> dict[str, float]:
    """Sum stage timings (ms); a stage that runs every round accumulates."""
    merged = dict(left or {})
    for stage, ms in (right or {}).items():
        merged[stage] = merged.get(stage, 0.0) + ms
    return merged


def merge_results(left: dict[str, dict[str, Any]], right: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rerankers running as parallel branches each add their result under their name."""
    return {**(left or {}), **(right or {})}


class InputState(TypedDict):
    query: str
    """The user's original query."""


class DeepSearchState(InputState, total=False):
    current_query: str
    """The query of the latest retrieval (original + blank line + latest expansions)."""
    round: int
    """Expansion rounds done so far (0 = only the original query)."""
    stop_reason: str
    """Why the expansion loop stopped ('' while it continues)."""
    plan: list[str]
    """Rerank nodes chosen by ``decide`` once the loop stops (empty = straight to merge)."""
    hits: list[dict[str, Any]]
    """The latest hybrid ranking (SearchHit dicts), best first."""
    previous_top: list[str]
    """Top-10 ids of the round before the latest one (for the convergence test)."""
    seen_ids: Annotated[list[str], operator.add]
    """Documents already shown to the expander (per-query feedback filter)."""
    expansions: Annotated[list[dict[str, Any]], operator.add]
    """One ExpansionRound dict per round."""
    notes: Annotated[list[str], operator.add]
    """Degraded or skipped stages, each with its reason."""
    usage: Annotated[dict[str, dict[str, int]], add_usage]
    timings_ms: Annotated[dict[str, float], add_timings]
    rerank: Annotated[dict[str, dict[str, Any]], merge_results]
    """Each reranker's result dict (its spec's ``result`` model) under its registry name; {} = it failed."""
    rerank_why: str
    """Why these rerankers (default, asked for, or none configured)."""
    results: list[dict[str, Any]]
    """Final ranked documents (SearchHit dicts; scores hold hybrid/pointwise/listwise/final)."""
