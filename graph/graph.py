"""The compiled DIVER deep-search graph.

    START -> retrieve -> decide -+-> expand -> retrieve -> decide ...   (loop while decide says so;
                                 |          +-> decide when the round failed: last good ranking kept)
                                 +-> rerank_<name> (first pass) -> rerank_<name> ... --+-> merge -> END
                                 +-> rerank_<name> (one per registered reranker) -------+
                                 +-> merge (no reranking) ------------------------------^

``decide`` only loops while ``round < expansion.rounds`` (capped at 6 in the settings), so the loop is
bounded by construction: at most 2 + 3 * 6 + 2 = 22 super-steps, under LangGraph's default limit of 25.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from diver.graph.context import Context
from diver.graph.decisions import expansion_failed
from diver.graph.rerank_more import first_pass_nodes, route_after_first_pass
from diver.graph.rerank_nodes import RerankNodes
from diver.graph.resources import Provider
from diver.graph.state import DeepSearchState, InputState
from diver.llm.prompts import load_template
from diver.stages.rerank import registry

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
    first = first_pass_nodes(plan)
    if first:  # a first pass (the cross-encoder): the other rerankers follow it
        return first if len(first) > 1 else first[0]
    return plan or "merge"


def build_graph(provider: Provider | None = None, name: str = "diver") -> Any:
    """Compile the graph over ``provider`` (default: settings from the environment, engine collections)."""
    for template in _TEMPLATES:  # read the prompt files now, not inside the event loop
        load_template(template)
    if provider is not None and provider._settings is not None:  # env settings stay lazy (langgraph.json)
        registry.check(provider._settings.rerank.rerankers)  # an unknown reranker name: a ConfigError now
    nodes = RerankNodes(provider or Provider())
    builder = StateGraph(DeepSearchState, context_schema=Context, input_schema=InputState)
    builder.add_node("retrieve", nodes.retrieve)
    builder.add_node("decide", nodes.decide)
    builder.add_node("expand", nodes.expand)
    specs = registry.specs()  # read now: a reranker registered after import is in the next build
    for spec in specs:
        builder.add_node(spec.node, nodes.node_for(spec))
    builder.add_node("merge", nodes.merge)
    builder.add_edge(START, "retrieve")
    builder.add_edge("retrieve", "decide")
    builder.add_conditional_edges("decide", route_after_decide, ["expand", *(s.node for s in specs), "merge"])
    rest = [s.node for s in specs if not s.first_pass]
    for spec in specs:
        if spec.first_pass:
            builder.add_conditional_edges(spec.node, route_after_first_pass, [*rest, "merge"])
        else:
            builder.add_edge(spec.node, "merge")
    builder.add_conditional_edges("expand", route_after_expand, ["retrieve", "decide"])
    builder.add_edge("merge", END)
    return builder.compile(name=name)


graph = build_graph()
