"""The compiled DIVER deep-search graph.

    START -> retrieve -> decide -+-> expand -> retrieve -> decide ...   (loop while decide says so;
                                 |          +-> decide when the round failed: last good ranking kept)
                                 +-> rerank_pointwise --+
                                 +-> rerank_listwise  --+-> merge -> END
                                 +-> merge (no reranking) ------^

``decide`` only loops while ``round < expansion.rounds`` (capped at 6 in the settings), so the loop is
bounded by construction: at most 2 + 3 * 6 + 2 = 22 super-steps, under LangGraph's default limit of 25.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from diver.graph.context import Context
from diver.graph.decisions import expansion_failed
from diver.graph.rerank_more import AllRerankNodes, route_after_cross_encoder
from diver.graph.resources import Provider
from diver.graph.state import DeepSearchState, InputState
from diver.llm.prompts import load_template

_TEMPLATES = (
    "expand_first", "expand_refine", "listwise", "sufficiency", "pointwise_general", "pointwise_coding",
    "pointwise_math-theorem", "pointwise_math-problem", "pointwise_documentation", "groupwise",
)  # fmt: skip


def route_after_expand(state: DeepSearchState) -> str:
    """A failed round has no new query: skip retrieval, keep the last good ranking, and let decide stop."""
    return "decide" if expansion_failed(dict(state)) else "retrieve"


def route_after_decide(state: DeepSearchState) -> str | list[str]:
    if not state.get("stop_reason"):
        return "expand"
    plan = list(state.get("plan") or [])
    if "rerank_cross_encoder" in plan:  # a first pass: the LLM rerankers follow it
        return "rerank_cross_encoder"
    return plan or "merge"


def build_graph(provider: Provider | None = None, name: str = "diver") -> Any:
    """Compile the graph over ``provider`` (default: settings from the environment, engine collections)."""
    for template in _TEMPLATES:  # read the prompt files now, not inside the event loop
        load_template(template)
    nodes = AllRerankNodes(provider or Provider())
    builder = StateGraph(DeepSearchState, context_schema=Context, input_schema=InputState)
    builder.add_node("retrieve", nodes.retrieve)
    builder.add_node("decide", nodes.decide)
    builder.add_node("expand", nodes.expand)
    builder.add_node("rerank_pointwise", nodes.rerank_pointwise)
    builder.add_node("rerank_listwise", nodes.rerank_listwise)
    builder.add_node("rerank_groupwise", nodes.rerank_groupwise)
    builder.add_node("rerank_cross_encoder", nodes.rerank_cross_encoder)
    builder.add_node("merge", nodes.merge)
    builder.add_edge(START, "retrieve")
    builder.add_edge("retrieve", "decide")
    builder.add_conditional_edges(
        "decide", route_after_decide,
        ["expand", "rerank_pointwise", "rerank_listwise", "rerank_groupwise", "rerank_cross_encoder", "merge"],
    )  # fmt: skip
    builder.add_conditional_edges(
        "rerank_cross_encoder", route_after_cross_encoder,
        ["rerank_pointwise", "rerank_listwise", "rerank_groupwise", "merge"],
    )  # fmt: skip
    builder.add_conditional_edges("expand", route_after_expand, ["retrieve", "decide"])
    builder.add_edge("rerank_pointwise", "merge")
    builder.add_edge("rerank_listwise", "merge")
    builder.add_edge("rerank_groupwise", "merge")
    builder.add_edge("merge", END)
    return builder.compile(name=name)


graph = build_graph()
