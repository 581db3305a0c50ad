"""MCP sampling as deep_search's third reasoner: the client's own model writes the expansion.

Optional and isolated here: sampling is deprecated in the 2026-07-28 spec (SEP-2577), and few clients declare
it (VS Code does; Claude Desktop, Claude Code and Cursor do not). It uses the SDK 2.x supported form: the
tool parameter ``sampled: Sampled`` is filled by the resolver ``expansion_request`` before the tool body
runs. The resolver returns ``None`` (no sampling) unless sampling is the reasoner to use, i.e. the agent
passed no expansions, no LLM endpoint is configured, ``max_rounds > 0`` and the client's capabilities declare
``sampling``; then it returns a ``Sample`` of our ``expand_first`` prompt over the unseen top passages,
and the SDK sends ``sampling/createMessage`` (or, on >= 2026-07-28, an ``InputRequiredResult``) and injects
the client's ``CreateMessageResult``. ``sampling_rounds`` then retrieves with that expansion exactly as the
agent-driven loop does (round token, feedback, convergence) and reports ``reasoner="sampling"``.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, Resolve, Sample
from mcp_types import CreateMessageResult, SamplingMessage, TextContent

from diver.hits import SearchHit
from diver.llm.client import Message
from diver.server.agent_loop import decode_round, encode_round, select_feedback
from diver.server.errors import in_thread
from diver.server.models import DeepSearchOutput, ExpansionOutput
from diver.server.search import agent_round, run_search
from diver.server.state import ServerState, state_of
from diver.stages.assembly_plan import clean
from diver.stages.expansion import build_expansion_messages, feedback_passages, strip_reasoning

SAMPLE_MAX_TOKENS = 1024
"""Completion budget asked of the client's model for one expansion passage."""


def client_samples(ctx: Context) -> bool:
    """Whether the client declared the ``sampling`` capability."""
    capabilities = ctx.client_capabilities
    return capabilities is not None and capabilities.sampling is not None


def prompt_feedback(state: ServerState, collection: str, query: str, token: str | None,
                    where: dict[str, Any] | None, source: str | None) -> list[SearchHit]:  # fmt: skip
    """The top ``feedback_k`` hits not shown before (same filters): the passages the prompt shows."""
    prev = decode_round(token, collection, query)
    feedback_k = state.settings.expansion.feedback_k
    depth = min(state.settings.limits.max_k, feedback_k + len(prev.seen))
    hits = run_search(state, collection, query, max(depth, 1), "hybrid", None, where, source).hits
    return select_feedback(hits, prev.seen, feedback_k)


def expansion_prompt(state: ServerState, collection: str, query: str, token: str | None,
                     where: dict[str, Any] | None, source: str | None) -> list[Message]:  # fmt: skip
    """Our round-1 expansion prompt (``expand_first``, after DIVER's QExpand) over the query's unseen top passages."""
    chosen = prompt_feedback(state, collection, query, token, where, source)
    col = state.engine.collection(collection)
    passages = feedback_passages([h.id for h in chosen], chosen, lambda i: col.get(i).text,
                                 state.settings.expansion.passage_tokens)  # fmt: skip
    return build_expansion_messages(query, passages, None)


async def expansion_request(collection: str, query: str, expansions: list[str] | None, round: str | None,
                            where: dict[str, Any] | None, source: str | None, max_rounds: int,
                            ctx: Context) -> Sample | None:  # fmt: skip
    """Resolver of deep_search's ``sampled``: a ``Sample`` of the expansion prompt when sampling is the
    reasoner to use (no agent expansions, no endpoint, the client samples, rounds wanted), else None."""
    state = state_of(ctx)
    if clean(expansions) or state.has_endpoint or max_rounds == 0 or not client_samples(ctx):
        return None
    messages = await in_thread(expansion_prompt, state, collection, query, round, where, source)
    system = "\n\n".join(text for role, text in messages if role == "system") or None
    user = "\n\n".join(text for role, text in messages if role != "system")
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text=user))],
                  max_tokens=SAMPLE_MAX_TOKENS, system_prompt=system, include_context="none",
                  temperature=state.settings.llm.expander.temperature,
                  metadata={"diver": "expand_first"})  # fmt: skip


Sampled = Annotated[CreateMessageResult | None, Resolve(expansion_request)]
"""deep_search's parameter filled by ``expansion_request`` (not part of the tool's input schema)."""


def sampled_text(result: CreateMessageResult) -> str:
    """The expansion in the client's reply, reasoning before a final ``</think>`` dropped; '' if none."""
    content = result.content
    return strip_reasoning(content.text) if isinstance(content, TextContent) else ""


async def sampling_rounds(state: ServerState, sampled: CreateMessageResult, collection: str, query: str, k: int,
                          token: str | None, where: dict[str, Any] | None, source: str | None,
                          max_rounds: int) -> tuple[DeepSearchOutput, list[Any]]:  # fmt: skip
    """One round of the loop with the expansion the client's model wrote (``reasoner="sampling"``); a reply
    without text falls back to retrieval only, and says so."""
    text = sampled_text(sampled)
    if not text:
        why = (f"the client's model (MCP sampling, {sampled.model}) returned no text: retrieval only; write the "
               "expansions yourself (see next_step)")  # fmt: skip
        return await in_thread(agent_round, state, collection, query, k, None, token, where, source, max_rounds,
                               "none", why)  # fmt: skip
    why = (f"no expansions passed and no LLM endpoint configured; the client declares MCP sampling, so its "
           f"model ({sampled.model}) wrote the expansion with our expand_first prompt")  # fmt: skip
    shown = [h.id for h in await in_thread(prompt_feedback, state, collection, query, token, where, source)]
    prev = decode_round(token, collection, query)  # the passages the model read count as seen
    prev.seen = [*prev.seen, *(i for i in shown if i not in prev.seen)]
    out, hits = await in_thread(agent_round, state, collection, query, k, [text], encode_round(prev), where,
                                source, max_rounds, "sampling", why)  # fmt: skip
    out.expansions = [ExpansionOutput(round=out.round_no, expansions=[text], feedback_ids=shown)]
    out.stages = ["expand (sampling)", *out.stages]
    out.llm_calls = 1
    return out, hits
