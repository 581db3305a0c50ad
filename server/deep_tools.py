"""``deep_search``: the DIVER loop with whichever reasoner is available, in this order:

1. ``agent``    expansions the calling agent passed (it is the reasoner; no server LLM is needed);
2. ``endpoint`` the configured OpenAI-compatible LLM (the LangGraph pipeline: expansion and reranking);
3. ``sampling`` the client's own model through MCP sampling, when the client declares it;
4. ``none``     retrieval only, returning feedback passages and a round token so the agent can take over.

The result always says which ran and why (``reasoner``, ``reasoner_why``).
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from diver.errors import DiverError
from diver.server.agent_loop import (
    TOP_N,
    RoundState,
    decode_round,
    encode_round,
)
from diver.server.budget import fit_hits
from diver.server.errors import in_thread, to_mcp_error
from diver.server.models import DeepSearchOutput
from diver.server.progress import ProgressReporter
from diver.server.rerank_tools import Rerankers, RerankWeights, local_rerank, rerank_context
from diver.server.sampling import Sampled, sampling_rounds
from diver.server.schemas import (
    READ_ONLY,
    Collection,
    Expansions,
    HitChars,
    K,
    MaxChars,
    Query,
    RoundToken,
    Source,
    Where,
)
from diver.server.search import agent_round, run_search
from diver.server.state import ServerState, state_of
from diver.stages.assembly_plan import clean
from diver.stages.assembly_search import AssemblingRetriever, AssemblyTarget


def register_deep_search(server: MCPServer) -> None:
    @server.tool(annotations=READ_ONLY)
    async def deep_search(
        collection: Collection,
        query: Query,
        ctx: Context,
        k: K = 10,
        expansions: Expansions = None,
        round: RoundToken = None,
        where: Where = None,
        source: Source = None,
        max_rounds: Annotated[int, Field(ge=0, le=6, description="Expansion rounds (0 = none).")] = 2,
        rerank: Annotated[bool, Field(description="Rerank the candidates (False = none).")] = True,
        rerankers: Rerankers = None,
        rerank_weights: RerankWeights = None,
        max_chars: MaxChars = 20_000,
        hit_chars: HitChars = 1000,
        sampled: Sampled = None,
    ) -> DeepSearchOutput:
        """Retrieval for reasoning-intensive questions: the DIVER loop, YOU being the reasoner.

        1. Call with the query: hits, `feedback` (unseen top passages), a `round` token.
        2. Write one passage answering the query, naming the theorems/concepts/methods/APIs a relevant
           document would contain; call again: same query, expansions=[passage], the `round` token.
        3. Refine the passage with the new feedback (fix, add what is missing); call again.
        Stop when `converged` (top-10 stable); `next_step` says what next. Without expansions the server's
        LLM or your client's sampling may reason (`reasoner` says which). Filters/budgets as in search."""
        state = state_of(ctx)
        has_parts = bool(clean(expansions))
        if has_parts:
            out, hits = await in_thread(agent_round, state, collection, query, k, expansions, round, where,
                                        source, max_rounds, "agent", "you passed expansions")  # fmt: skip
        elif state.has_endpoint:
            options = rerank_context(rerank, rerankers, rerank_weights)
            out, hits = await _endpoint(state, ctx, collection, query, k, round, where, source, max_rounds, options)
        else:
            if sampled is not None:  # filled by sampling.expansion_request: the client's model wrote it
                out, hits = await sampling_rounds(state, sampled, collection, query, k, round, where, source,
                                                  max_rounds)  # fmt: skip
            else:
                why = ("no expansions passed, no LLM endpoint configured (llm.expander.model) and the client "
                       "does not declare MCP sampling: write the expansions yourself (see next_step)")  # fmt: skip
                if max_rounds == 0:
                    why = "max_rounds=0: retrieval only"
                out, hits = await in_thread(agent_round, state, collection, query, k, None, round, where,
                                            source, max_rounds, "none", why)  # fmt: skip
        if out.reasoner != "endpoint":  # no server LLM ran the pipeline: a local cross-encoder may rerank
            retriever = await in_thread(state.engine.collection, collection)
            hits, out.rerankers, out.rerankers_why, notes = await in_thread(
                local_rerank, state.settings, retriever, query, list(hits), rerank, rerankers
            )
            if out.rerankers:
                out.stages.append("cross_encoder")
                out.skipped = [s for s in out.skipped if not s.startswith("rerank: not run")]
            out.skipped.extend(notes)
        out.hits, out.cut = fit_hits(hits, hit_chars, max_chars)
        return out


async def _endpoint(state: ServerState, ctx: Context, collection: str, query: str, k: int, token: str | None,
                    where: dict[str, Any] | None, source: str | None, max_rounds: int,
                    rerank: dict[str, Any]) -> tuple[DeepSearchOutput, list[Any]]:  # fmt: skip
    """The server's LLM runs the whole pipeline (LangGraph): expansion rounds, then reranking."""
    prev = await in_thread(decode_round, token, collection, query)
    await in_thread(run_search, state, collection, query, 1, "bm25", None, where, source)  # fail fast
    col = await in_thread(state.engine.collection, collection)
    run = await in_thread(state.graph_runner)
    context: dict[str, Any] = {"k": k, "rounds": max_rounds, "collection": collection}
    context.update(rerank)
    retriever = AssemblingRetriever(AssemblyTarget.for_collection(col), variant=state.settings.search.assembly,
                                    where=where, source=source)  # fmt: skip
    reporter = ProgressReporter(ctx)

    async def work() -> Any:
        return await run(retriever, query, state.settings, context=context, progress=reporter.emit,
                         chat_factory=state.chat_factory)  # fmt: skip

    try:
        result = await reporter.run(work, "deep search started: retrieving", "deep search done")
    except DiverError as exc:
        raise to_mcp_error(exc) from exc
    top = [h.id for h in result.hits[:TOP_N]]
    seen = prev.seen + [i for r in result.expansions for i in r.feedback_ids]
    new = RoundState(prev.round + result.rounds, top, seen, prev.binding)
    out = DeepSearchOutput(
        collection=collection, query=query, hits=[],
        expansions=[e.model_dump() for e in result.expansions], rounds=result.rounds,
        stop_reason=result.stop_reason, stages=result.stages, skipped=result.notes, fallbacks=result.fallbacks,
        llm_calls=result.llm_calls, tokens=result.tokens, timings_ms=result.timings_ms, reasoner="endpoint",
        reasoner_why="no expansions passed; the server's LLM endpoint is configured", round=encode_round(new),
        round_no=new.round, converged=True, next_step="Done: the server's LLM ran the loop. Use `hits`.",
        rerankers=result.rerankers, rerankers_why=result.rerankers_why,
    )  # fmt: skip
    return out, list(result.hits)
