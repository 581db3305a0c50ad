"""Separate models for pointwise and listwise (the reference used Qwen2.5-32B and gemini-2.5-flash):
llm.pointwise / llm.listwise, each falling back to llm.reranker, with the reranker's own sampling."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from llm_fakes import FakeRetriever, ScriptedChatModel

from diver.config import load_settings
from diver.graph.context import Context
from diver.graph.run import arun_deep_search

DOCS = {f"d{i}": f"pigeons boxes share note {i} " + "x " * i for i in range(6)}


def reply(prompt: str) -> str:
    if "Relevance score" in prompt:
        return "Relevance score: 5"
    count = len(re.findall(r"^\[\d+\] <document>", prompt, flags=re.M))
    return "```json\n" + json.dumps({"ranking": list(range(1, count + 1))}) + "\n```"


def test_listwise_goes_to_its_own_model_with_its_sampling(tmp_path: Path) -> None:
    calls: list[tuple[str | None, float, str]] = []

    def factory(settings: Any) -> ScriptedChatModel:
        def record(prompt: str) -> str:
            kind = "pointwise" if "Relevance score" in prompt else "listwise"
            calls.append((settings.model, settings.temperature, kind))
            return reply(prompt)

        return ScriptedChatModel(reply=record, prompts=[])

    settings = load_settings(
        data_dir=tmp_path, llm={"cache": False, "reranker": {"model": "qwen-32b"}, "listwise": {"model": "flash"}},
        rerank={"listwise_sampling": {"temperature": 0.8, "top_p": 0.8},
                "pointwise_sampling": {"temperature": 0.6, "max_tokens": 128}},
    )  # fmt: skip
    asyncio.run(arun_deep_search(FakeRetriever(DOCS), "pigeons boxes", settings, chat_factory=factory,
                                 context=Context(expand=False, rerankers=["pointwise", "listwise"])))  # fmt: skip
    assert {c for c in calls if c[2] == "listwise"} == {("flash", 0.8, "listwise")}
    assert {c for c in calls if c[2] == "pointwise"} == {("qwen-32b", 0.6, "pointwise")}
    assert sum(c[2] == "pointwise" for c in calls) == len(DOCS)
