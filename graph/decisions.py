"""Pure routing logic of the ``decide`` node: why to stop expanding, and which rerank stages run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diver.config import DiverSettings
from diver.stages.rerank.choice import choose_rerankers

TOP_N = 10


def top_overlap(previous: Sequence[str], current: Sequence[str], n: int = TOP_N) -> float:
    """|top-n(previous) ∩ top-n(current)| / n-ish (divided by the larger of the two top lists)."""
    a, b = set(previous[:n]), set(current[:n])
    return len(a & b) / max(len(a), len(b), 1)


def stop_reason(state: dict[str, Any], settings: DiverSettings, expand: bool, has_expander: bool) -> str:
    """'' to run another expansion round, else why the loop stops. Bounded: rounds is capped in settings."""
    rounds = settings.expansion.rounds if expand else 0
    done = state.get("round", 0)
    if rounds == 0:
        return "expansion disabled"
    if not has_expander:
        return "no expander LLM configured (retrieval only)"
    if done >= 1 and expansion_failed(state):
        return f"expansion round {done} produced no usable text; kept round {done - 1}'s query and ranking"
    if done >= rounds:
        return f"max_rounds ({rounds}) reached"
    if done >= 1 and settings.expansion.early_stop:
        current = [h["id"] for h in state.get("hits") or []]
        overlap = top_overlap(state.get("previous_top") or [], current)
        if overlap >= settings.expansion.stop_overlap:
            return f"converged: top-{TOP_N} overlap {overlap:.2f} >= {settings.expansion.stop_overlap}"
    return ""


def rerank_stages(settings: DiverSettings, has_reranker: bool) -> tuple[list[str], list[str]]:
    """(nodes to run, notes on stages skipped and why); see ``diver.stages.rerank.choice``."""
    choice = choose_rerankers(settings.rerank, has_reranker)
    return choice.nodes, choice.skipped


def expansion_failed(state: dict[str, Any]) -> bool:
    """True when the latest expansion round produced no usable text (nothing new to retrieve with)."""
    expansions = state.get("expansions") or []
    return bool(expansions) and not expansions[-1].get("expansions")
