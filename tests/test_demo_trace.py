"""The demo's deep-search trace, printed from the public DeepSearchResult and progress events of the graph
(fake LLM: the real llama.cpp run is `make demo` and tests/integration/test_llama_cpp.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_fakes import FakeRetriever, ScriptedChatModel

from diver.config import load_settings
from diver.demo import _demo_settings, print_trace
from diver.graph.run import run_deep_search

DOCS = {f"t{i}": f"Theorem {i}: statement about topic{i} and topic{i + 1}." for i in range(30)}
DOCS["target"] = "The pigeonhole principle: topic7 topic8 boxes and pigeons."


def reply(prompt: str) -> str:
    if "Relevance score: X" in prompt:
        return "Relevance score: 9" if "pigeonhole" in prompt else "no idea"  # unparseable -> counted
    if "candidate documents" in prompt:
        return "I cannot rank these."  # unparseable -> listwise falls back to the prior order
    return "<think>hm</think>The pigeonhole principle: n+1 pigeons in n boxes share a box. " + "topic7 " * 60


def test_demo_settings_for_the_local_llm(tmp_path: Path) -> None:
    settings = _demo_settings(load_settings(data_dir=tmp_path), "http://127.0.0.1:9/v1")
    assert settings.llm.expander.model == settings.llm.reranker.model == "smollm2"
    assert settings.llm.reranker.base_url == "http://127.0.0.1:9/v1" and settings.llm.expander.max_tokens_in_extra_body
    assert settings.rerank.rerank_k == 8 and settings.expansion.rounds == 2


def test_trace_shows_rounds_decision_rerank_stages_and_both_rankings(tmp_path: Path) -> None:
    settings = _demo_settings(
        load_settings(
            data_dir=tmp_path,
            llm={"cache": False, "expander": {"model": "fake", "max_retries": 0}, "reranker": {"model": "fake"}},
        ),
        None,
    )
    decisions: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def progress(event: dict[str, Any]) -> None:
        events.append(event)
        if event.get("event") == "decision":
            decisions.append(event)

    retriever = FakeRetriever(DOCS)
    result = run_deep_search(
        retriever,
        "How many pigeons must share a box?",
        settings,
        context={"k": 10},
        progress=progress,
        chat_factory=lambda _s: ScriptedChatModel(reply=reply, prompts=[]),
    )
    assert all(e.get("message") for e in events), "the progress display shows each event's message"
    lines: list[str] = []
    print_trace(result, decisions, retriever.search("How many pigeons must share a box?", 10), {"target"}, lines.append)
    text = "\n".join(lines)
    print(text)
    assert "round 1:" in text and 'passage 1: "The pigeonhole principle' in text
    assert " …" in text, "long passages are shortened"
    assert "decide: stop" in text and (result.stop_reason in text)
    assert "pointwise:" in text and "listwise:" in text and "rerankers: " in text
    assert "unparseable replies" in text and "FELL BACK" in text
    assert "timings:" in text and "tokens" in text
    assert "hybrid (no LLM)" in text and "DIVER deep search" in text and "*" in text
