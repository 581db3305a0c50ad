"""A real agent framework drives the DIVER MCP server: LangChain's prebuilt ReAct agent (``create_agent``, the
successor of ``langgraph.prebuilt.create_react_agent``) with the tools loaded through LangChain's MCP
adapter, and a scripted chat model playing the agent: it searches, runs DIVER's two-round loop as the
expander (round 0, then an expansion written from the feedback, then a refinement with the new feedback and
round token), filters by metadata and by source, and reads a chunk window of a long document.

The server runs as a subprocess: ``diver serve`` over stdio (engine in the server process) and over
streamable HTTP with a bearer token (the shared engine process). ``langchain-mcp-adapters`` (0.3.2, the
latest) pins ``mcp<2``; its successor for the MCP SDK 2.x is ``langchain.mcp`` (``langchain[mcp]``), whose
``MCPAdapter`` over an ``MCPConfig`` plays ``MultiServerMCPClient``'s part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from mcp_support import REPO, THEOREMS, server_env, wait_for_port
from servers import free_port, stop

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # LangChainBetaWarning: langchain.mcp is in beta
    pytest.importorskip("langchain.mcp", reason="needs langchain[mcp] (fastmcp) for the MCP SDK 2.x")
    from langchain.agents import create_agent  # noqa: E402
    from langchain.mcp import MCPAdapter  # noqa: E402
from fastmcp.mcp_config import MCPConfig  # noqa: E402
from langchain_core.callbacks import CallbackManagerForLLMRun  # noqa: E402
from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402

from diver.config import load_settings  # noqa: E402
from diver.engine import Engine  # noqa: E402
from diver.service import protocol  # noqa: E402
from diver.text.documents import Document  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOKEN = "react-agent-token-0123456789"
COLLECTION = "theorems"
QUERY = "Mary bakes 10 cookies in three shapes. What is the smallest possible count of the most common shape?"
EXPANSION = "Pigeonhole principle: putting n items into m boxes, some box holds at least ceil(n/m) items."
LONG_ID = "notes/measure-theory"
MARKER = "zygomorphic quasicrystal lattice"
LONG_TEXT = "\n\n".join(
    f"Paragraph {i}. " + (f"The {MARKER} is defined here. " if i == 25 else "")
    + " ".join(f"Sentence {j} of paragraph {i} on sigma algebras and measurable sets." for j in range(4))
    for i in range(40)
)  # fmt: skip
FRENCH = 3
Step = Callable[[list[dict[str, Any]]], dict[str, Any] | None]


def corpus() -> list[Document]:
    """80 theorems (the pigeonhole principle first; FRENCH of them lang=fr), sources under theorems/, and one
    long note under notes/ (many chunks; MARKER only in paragraph 25)."""
    names = ["Pigeonhole Principle", *[t for t in sorted(THEOREMS) if t != "Pigeonhole Principle"][:79]]
    docs = [Document(id=name, text=f"{name}\n{THEOREMS[name]}",
                     metadata={"lang": "fr" if i % 30 == 7 else "en", "source": f"theorems/{i}.md"})
            for i, name in enumerate(names)]  # fmt: skip
    assert sum(d.metadata["lang"] == "fr" for d in docs) == FRENCH
    docs.append(Document(id=LONG_ID, text=LONG_TEXT, metadata={"lang": "en", "source": "notes/measure.md"}))
    return docs


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory pre-indexed by a local engine (closed again, so the server can open it)."""
    settings = load_settings(data_dir=tmp_path / "data", embedding={"provider": "hashing"},
                             engine={"mode": "local"})  # fmt: skip
    with Engine(settings) as engine:
        engine.collection(COLLECTION, create=True).upsert(corpus())
    return tmp_path / "data"


class ScriptedAgent(BaseChatModel):
    """A chat model that plays the agent: each turn, ``steps[i]`` reads the structured results of the tool
    calls so far and returns the next tool call ({"name", "args"}), or None to answer and stop."""

    steps: list[Step]
    bound: list[str] = []

    @property
    def _llm_type(self) -> str:
        return "scripted-agent"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedAgent:
        self.bound = [getattr(t, "name", str(t)) for t in tools]
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:  # fmt: skip
        results = [tool_result(m) for m in messages if isinstance(m, ToolMessage)]
        turn = sum(isinstance(m, AIMessage) for m in messages)
        call = self.steps[turn](results) if turn < len(self.steps) else None
        if call is None:
            message = AIMessage(content="Done: the pigeonhole principle answers it.")
        else:
            message = AIMessage(content="", tool_calls=[{**call, "id": f"call_{turn}", "type": "tool_call"}])
        return ChatResult(generations=[ChatGeneration(message=message)])


def tool_result(message: ToolMessage) -> dict[str, Any]:
    """The structured result of an MCP tool call (the adapter's artifact), or {"error": text}."""
    text = message.content if isinstance(message.content, str) else " ".join(
        b.get("text", "") for b in message.content if isinstance(b, dict))  # fmt: skip
    if message.status == "error":
        return {"error": text}
    artifact = message.artifact or {}
    structured = artifact.get("structured_content") if isinstance(artifact, dict) else None
    return structured if structured is not None else json.loads(text)


def agent_steps() -> list[Step]:
    """search -> deep_search round 0 -> round 1 (an expansion naming what the feedback suggests) -> round 2
    (refined with the new feedback and the round token) -> where filter -> source scope -> chunk window."""

    def expansion(feedback: list[dict[str, Any]]) -> str:
        assert feedback, "the agent writes its expansion after reading the feedback"
        return EXPANSION

    return [
        lambda r: {"name": "search", "args": {"collection": COLLECTION, "query": QUERY, "k": 5}},
        lambda r: {"name": "deep_search", "args": {"collection": COLLECTION, "query": QUERY, "k": 10}},
        lambda r: {
            "name": "deep_search",
            "args": {
                "collection": COLLECTION,
                "query": QUERY,
                "k": 10,
                "expansions": [expansion(r[-1]["feedback"])],
                "round": r[-1]["round"],
            },
        },
        lambda r: {
            "name": "deep_search",
            "args": {
                "collection": COLLECTION,
                "query": QUERY,
                "k": 10,
                "expansions": [expansion(r[-1]["feedback"]) + " Generalized pigeonhole principle."],
                "round": r[-1]["round"],
            },
        },
        lambda r: {
            "name": "search",
            "args": {
                "collection": COLLECTION,
                "query": "theorem principle",
                "k": 10,
                "where": {"lang": "fr"},
            },
        },
        lambda r: {
            "name": "search",
            "args": {"collection": COLLECTION, "query": MARKER, "k": 3, "source": "notes/"},
        },
        lambda r: {
            "name": "get_document",
            "args": {
                "collection": COLLECTION,
                "id": r[-1]["hits"][0]["id"],
                "around_chunk": r[-1]["hits"][0]["chunk"],
                "window": 1,
            },
        },
    ]


async def run_agent(config: dict[str, Any]) -> tuple[list[dict[str, Any]], list[ToolMessage], str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapter = MCPAdapter(MCPConfig.model_validate(config))
    async with adapter:
        tools = await adapter.list_tools()
        assert {"search", "deep_search", "get_document", "list_collections"} <= {t.name for t in tools}
        agent = create_agent(ScriptedAgent(steps=agent_steps()), tools)
        state = await agent.ainvoke(
            {"messages": [{"role": "user", "content": QUERY}]}, {"recursion_limit": 40}
        )
    messages = state["messages"]
    tool_messages = [m for m in messages if isinstance(m, ToolMessage)]
    return [tool_result(m) for m in tool_messages], tool_messages, str(messages[-1].content)


def check_transcript(results: list[dict[str, Any]], tool_messages: list[ToolMessage], answer: str) -> None:
    assert [m.name for m in tool_messages] == ["search", "deep_search", "deep_search", "deep_search", "search",
                                               "search", "get_document"]  # fmt: skip
    assert all("error" not in r for r in results), [r["error"] for r in results if "error" in r]
    searched, round0, round1, round2, filtered, scoped, window = results
    assert answer.startswith("Done")

    assert searched["hits"] and all({"source", "chunk", "span", "scores"} <= set(h) for h in searched["hits"])
    assert round0["reasoner"] == "none" and round0["round_no"] == 0 and round0["round"] and round0["feedback"]
    # the round-0 token is accepted; the expansion written from the feedback is retrieved with the query
    assert round1["reasoner"] == "agent" and round1["round_no"] == 1 and not round1["converged"]
    ids = [[h["id"] for h in r["hits"]] for r in (round0, round1, round2)]
    assert "Pigeonhole Principle" not in ids[0] and "Pigeonhole Principle" in ids[1][:5]
    assert ids[2].index("Pigeonhole Principle") <= ids[1].index("Pigeonhole Principle")
    assert not {f["id"] for f in round1["feedback"]} & {f["id"] for f in round0["feedback"]}
    # the round-1 token is accepted too: round 2 ends the loop (max_rounds=2)
    assert round2["reasoner"] == "agent" and round2["round_no"] == 2 and round2["converged"]
    assert round2["next_step"].startswith("Stop") and round2["feedback"] == []

    assert len(filtered["hits"]) == FRENCH and all(h["metadata"]["lang"] == "fr" for h in filtered["hits"])
    hit = scoped["hits"][0]
    assert [h["id"] for h in scoped["hits"]] == [LONG_ID] and hit["source"] == "notes/measure.md"
    chunks = window["chunks"]
    assert window["id"] == LONG_ID and window["chunk_count"] > 3 and window["text"] == ""
    assert [c["index"] for c in chunks] == [i for i in range(hit["chunk"] - 1, hit["chunk"] + 2)
                                            if 0 <= i < window["chunk_count"]]  # fmt: skip
    assert all(c["text"] == LONG_TEXT[c["start"] : c["end"]] for c in chunks)
    assert any(MARKER in c["text"] for c in chunks)


def diver_command() -> list[str]:
    script = Path(sys.executable).with_name("diver")
    if not script.exists():
        pytest.skip(f"the `diver` console script is not installed next to {sys.executable}")
    return [str(script), "serve"]


async def test_react_agent_over_stdio(data_dir: Path) -> None:
    env = server_env(data_dir, None, [], DIVER_EMBEDDING__PROVIDER="hashing", DIVER_ENGINE__MODE="local")
    command, *args = diver_command()
    config = {"mcpServers": {"diver": {"command": command, "args": args, "env": env, "cwd": str(REPO)}}}
    check_transcript(*await run_agent(config))


@pytest.fixture
def http_server(data_dir: Path, tmp_path: Path) -> Iterator[str]:
    """``diver serve`` over streamable HTTP on loopback with a bearer token, on the shared engine process
    (stopped afterwards: it exits when idle, and is killed by its pid if it has not after 15 s)."""
    port = free_port()
    log = tmp_path / "server.log"
    env = server_env(data_dir, None, [], DIVER_EMBEDDING__PROVIDER="hashing", DIVER_SERVER__AUTH_TOKEN=TOKEN,
                     DIVER_ENGINE__MODE="shared", DIVER_ENGINE__IDLE_TIMEOUT_S="1")  # fmt: skip
    cmd = [*diver_command(), "--transport", "http", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(proc)
        stop_engine(data_dir)


def stop_engine(data_dir: Path) -> None:
    pid = protocol.read_pid(data_dir.resolve())
    deadline = time.monotonic() + 15
    while pid is not None and protocol.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid is not None and protocol.pid_alive(pid):
        os.kill(pid, 9)


async def test_react_agent_over_http_with_token(http_server: str, data_dir: Path) -> None:
    remote = {"url": http_server, "transport": "http", "headers": {"Authorization": f"Bearer {TOKEN}"}}
    results, tool_messages, answer = await run_agent({"mcpServers": {"diver": remote}})
    check_transcript(results, tool_messages, answer)
    assert protocol.read_pid(data_dir.resolve()) is not None  # the tools ran on the shared engine process
