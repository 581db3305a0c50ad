"""MCP sampling as deep_search's reasoner (SDK client in-process, hashing embedder, no LLM endpoint): a client
that declares sampling gets its own model asked for the expansion with DIVER's expand_first prompt; one
that does not gets retrieval only, with the reason; agent expansions and max_rounds=0 never sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from mcp_types import CreateMessageRequestParams, CreateMessageResult, TextContent  # noqa: E402

from diver.config import load_settings  # noqa: E402
from diver.server.app import build_server  # noqa: E402

THEOREMS: dict[str, str] = json.loads(Path("data/theoremqa/all_theorems.json").read_text(encoding="utf-8"))
QUERY = "Mary bakes 10 cookies in three shapes. What is the smallest possible count of the most common shape?"
REPLY = (
    "<think>ten items, three boxes</think>Pigeonhole principle: n items in m boxes, some box holds ceil(n/m)."
)


def documents(n: int = 80) -> list[dict[str, Any]]:
    names = ["Pigeonhole Principle", *[t for t in sorted(THEOREMS) if t != "Pigeonhole Principle"][: n - 1]]
    return [{"id": name, "text": f"{name}\n{THEOREMS[name]}", "metadata": {"lang": "fr" if i % 2 else "en"}}
            for i, name in enumerate(names)]  # fmt: skip


class ScriptedSampler:
    """The client's model: records each sampling request and answers with a scripted reply."""

    def __init__(self, reply: str = REPLY) -> None:
        self.reply = reply
        self.requests: list[CreateMessageRequestParams] = []

    async def __call__(self, context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        self.requests.append(params)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=self.reply),
                                   model="scripted-client-model", stop_reason="endTurn")  # fmt: skip


async def indexed(client: Client) -> None:
    result = await client.call_tool("index_documents", {"collection": "theorems", "documents": documents()})
    assert not result.is_error, result.content


async def deep(client: Client, **args: Any) -> dict[str, Any]:
    result = await client.call_tool("deep_search", {"collection": "theorems", "query": QUERY, **args})
    assert not result.is_error, " ".join(getattr(c, "text", "") for c in result.content)
    return result.structured_content


def server_for(tmp_path: Path) -> Any:
    return build_server(load_settings(data_dir=tmp_path / "data", embedding={"provider": "hashing"},
                                      llm={"cache": False}))  # fmt: skip


async def test_a_client_that_samples_writes_the_expansion(tmp_path: Path) -> None:
    sampler = ScriptedSampler()
    async with Client(server_for(tmp_path), sampling_callback=sampler) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "deep_search")
        assert "sampled" not in tool.input_schema["properties"]  # filled by the resolver, not the caller
        await indexed(client)
        out = await deep(client, where={"lang": "en"})
        assert out["reasoner"] == "sampling" and "scripted-client-model" in out["reasoner_why"]
        assert "declares MCP sampling" in out["reasoner_why"] and out["llm_calls"] == 1
        assert len(sampler.requests) == 1
        request = sampler.requests[0]
        prompt = request.messages[0].content.text
        assert QUERY in prompt and "<passage" in prompt and "write one passage" in prompt  # expand_first
        assert "retrieved data" in (request.system_prompt or "") and request.max_tokens > 0
        # the reply's reasoning is dropped; the expansion retrieves with the query (filters kept)
        assert out["expansions"][0]["expansions"] == [REPLY.split("</think>")[1]]
        shown = out["expansions"][0]["feedback_ids"]
        assert shown and all(THEOREMS.get(i) is not None for i in shown)
        assert out["round_no"] == 1 and out["round"] and not out["converged"]
        assert all(h["metadata"]["lang"] == "en" for h in out["hits"])
        assert "Pigeonhole Principle" in [h["id"] for h in out["hits"]]
        assert not set(shown) & {f["id"] for f in out["feedback"]}  # what the model read counts as seen

        # the agent may take over with the sampling round's token (and is then the reasoner)
        agent = await deep(client, where={"lang": "en"}, round=out["round"], expansions=[REPLY + " Boxes."])
        assert agent["reasoner"] == "agent" and agent["round_no"] == 2 and len(sampler.requests) == 1

        retrieval = await deep(client, max_rounds=0)
        assert retrieval["reasoner"] == "none" and "max_rounds=0" in retrieval["reasoner_why"]
        assert len(sampler.requests) == 1


async def test_a_client_without_sampling_gets_retrieval_only(tmp_path: Path) -> None:
    async with Client(server_for(tmp_path)) as client:
        await indexed(client)
        out = await deep(client)
        assert out["reasoner"] == "none" and out["round_no"] == 0 and out["llm_calls"] == 0
        assert "does not declare MCP sampling" in out["reasoner_why"] and out["feedback"] and out["round"]


async def test_an_empty_sampled_reply_falls_back_to_retrieval_only(tmp_path: Path) -> None:
    sampler = ScriptedSampler("<think>never finished")
    async with Client(server_for(tmp_path), sampling_callback=sampler) as client:
        await indexed(client)
        out = await deep(client)
        assert len(sampler.requests) == 1
        assert (
            out["reasoner"] == "none" and "returned no text" in out["reasoner_why"] and out["round_no"] == 0
        )
