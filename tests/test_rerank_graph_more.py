"""Groupwise and cross-encoder rerank nodes in the LangGraph pipeline: alone, merged, as a first pass, and
the choice of rerankers (which ran and why)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from ce_support import tiny_cross_encoder
from llm_fakes import FakeRetriever, ScriptedChatModel

from diver.config import DiverSettings, load_settings
from diver.graph.context import Context
from diver.graph.graph import route_after_decide
from diver.graph.rerank_more import route_after_cross_encoder
from diver.graph.run import arun_deep_search
from diver.stages.rerank.choice import choose_rerankers, merge_all

QUERY = "pigeons boxes share"
DOCS = {f"d{i:02d}": f"pigeons boxes share note {i} " + "filler " * i for i in range(24)}
DOCS["target"] = "The pigeonhole principle, stated and proved."  # shares no query word: ranked last


def reply(prompt: str) -> str:
    if "Score these documents based on their Usefulness" in prompt:
        docs = re.findall(r"\[(\d+)\]\. <document>\n(.*?)\n</document>", prompt, re.DOTALL)
        scores = {f"[{n}]": 10 if "pigeonhole" in text else 2 for n, text in docs}
        return f"<reason>ok</reason>\n<answer>\n```json\n{json.dumps(scores)}\n```\n</answer>"
    if "Relevance score: X" in prompt:
        return "Relevance score: 9" if "pigeonhole" in prompt else "Relevance score: 3"
    if "candidate documents" in prompt:
        count = int(re.search(r"(\d+) candidate documents", prompt).group(1))
        return "```json\n" + str(list(range(1, count + 1))) + "\n```"
    return "nothing"


PROMPTS: list[str] = []


def chat_factory(settings: Any) -> ScriptedChatModel:
    return ScriptedChatModel(reply=lambda p: (PROMPTS.append(p), reply(p))[1], prompts=[])


def _settings(tmp_path: Path, llm: bool = True, ce: bool = False, **rerank: Any) -> DiverSettings:
    values: dict[str, Any] = {"data_dir": tmp_path, "llm": {"cache": False}}
    if llm:
        values["llm"] = {"cache": False, "reranker": {"model": "fake-reranker", "max_retries": 0}}
    if ce:
        rerank["cross_encoder"] = {"model": str(tiny_cross_encoder()), "device": "cpu", "batch_size": 4,
                                   **rerank.get("cross_encoder", {})}  # fmt: skip
    values["rerank"] = {"pointwise_mode": "renormalised", **rerank}  # FakeRetriever scores are not in [0, 1]
    return load_settings(**values)


async def _run(settings: DiverSettings, **ctx: Any) -> Any:
    PROMPTS.clear()
    return await arun_deep_search(FakeRetriever(DOCS), QUERY, settings, context=Context(expand=False, **ctx),
                                  chat_factory=chat_factory)  # fmt: skip


async def test_groupwise_alone_lifts_the_last_document_into_the_top_3(tmp_path: Path) -> None:
    hybrid = [h.id for h in FakeRetriever(DOCS).search(QUERY, 25)]
    assert hybrid.index("target") == len(DOCS) - 1
    result = await _run(_settings(tmp_path), rerankers=["groupwise"])
    ids = [h.id for h in result.hits]
    assert "target" in ids[:3]
    assert result.rerankers == ["groupwise"] and result.rerankers_why.startswith("asked for")
    assert result.stages == ["retrieve", "groupwise"]
    assert result.usage["groupwise"].calls == 6  # 25 candidates: 3 groups of 10 x 2 rounds
    assert result.hits[0].scores["groupwise_group"] == 1.0
    assert all("Usefulness" in p for p in PROMPTS)
    assert result.parse_failures["groupwise"] == 0


async def test_groupwise_merges_with_pointwise_by_weighted_log_ranks(tmp_path: Path) -> None:
    result = await _run(_settings(tmp_path), rerankers=["pointwise", "groupwise"], groupwise_weight=0.5,
                        groupwise_preset="v3", k=25)  # fmt: skip
    assert result.rerankers == ["pointwise", "groupwise"]
    assert result.usage["groupwise"].calls == 12  # v3: groups of 20, step 20, 6 rounds over 25 candidates
    pointwise = sorted(result.hits, key=lambda h: -h.scores["pointwise"])
    group = sorted(result.hits, key=lambda h: -h.scores["groupwise"])
    for hit in result.hits:  # final = 0.6 * -ln(rank_p + 1) + 0.5 * -ln(rank_g + 1), ranks from 0
        expected = 0.6 * -math.log(pointwise.index(hit) + 1) + 0.5 * -math.log(group.index(hit) + 1)
        assert hit.score == pytest.approx(expected)
    assert group[0].id == "target" and [h.id for h in result.hits].index("target") < pointwise.index(group[0])
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)


async def test_cross_encoder_alone_then_as_first_pass(tmp_path: Path) -> None:
    result = await _run(_settings(tmp_path, llm=False, ce=True), k=25)
    assert result.rerankers == ["cross_encoder"]
    assert "only a local cross-encoder" in result.rerankers_why
    assert result.llm_calls == 0 and result.stages == ["retrieve", "cross_encoder"]
    combined = [h.scores["cross_encoder"] for h in result.hits]
    assert combined == sorted(combined, reverse=True) and len(set(h.id for h in result.hits)) == 25
    assert all(0.0 <= h.scores["cross_encoder_model"] <= 1.0 for h in result.hits)
    ce_top = [h.id for h in result.hits[:5]]

    both = await _run(_settings(tmp_path, ce=True, cross_encoder={"llm_k": 5}), k=25,
                      rerankers=["pointwise", "cross-encoder"])  # fmt: skip
    assert both.rerankers == ["cross_encoder", "pointwise"]
    assert both.usage["pointwise"].calls == 5  # the LLM reranks only the cross-encoder's top 5
    assert {h.id for h in both.hits[:5]} == set(ce_top)
    assert [h.id for h in both.hits[5:]] == [h.id for h in result.hits[5:]]  # the rest in its order


def test_choice_defaults_and_reasons(tmp_path: Path) -> None:
    llm = _settings(tmp_path).rerank
    assert choose_rerankers(llm, True).names == ["pointwise", "listwise"]
    assert "DIVER v2" in choose_rerankers(llm, True).why
    none = choose_rerankers(_settings(tmp_path, llm=False).rerank, False)
    assert none.names == [] and none.why == "no reranker configured"
    asked = choose_rerankers(_settings(tmp_path, llm=False, rerankers=["groupwise", "cross-encoder"]).rerank, False)
    assert asked.names == [] and len(asked.skipped) == 2
    forced = _settings(tmp_path, provider="cross-encoder").rerank
    assert choose_rerankers(forced, True).names == [] and "no cross-encoder model" in choose_rerankers(forced, True).skipped[0]
    assert choose_rerankers(_settings(tmp_path, rerankers=[]).rerank, True).skipped == ["rerank: disabled"]
    assert route_after_decide({"query": "q", "stop_reason": "x", "plan": ["rerank_cross_encoder", "rerank_groupwise"]}) == "rerank_cross_encoder"
    assert route_after_cross_encoder({"query": "q", "plan": ["rerank_cross_encoder", "rerank_groupwise"]}) == ["rerank_groupwise"]
    assert route_after_cross_encoder({"query": "q", "plan": ["rerank_cross_encoder"]}) == "merge"


def test_merge_all_by_hand() -> None:
    prior = ["a", "b", "c"]
    order, final = merge_all(prior, {"pointwise": ["c", "a", "b"], "groupwise": ["a", "c", "b"]},
                             {"pointwise": 0.6, "groupwise": 0.4})  # fmt: skip
    assert order == ["c", "a", "b"]  # c: 0.6*0 + 0.4*-ln2 = -0.277; a: 0.6*-ln2 + 0 = -0.416
    assert final["c"] == pytest.approx(-0.4 * 0.6931471805599453)
    ce = (["b", "a", "c", "d"], {"b": 0.9, "a": 0.8, "c": 0.1, "d": 0.0})
    assert merge_all(prior + ["d"], {}, {}, ce)[0] == ["b", "a", "c", "d"]
    assert merge_all(prior + ["d"], {"pointwise": ["a", "b"]}, {"pointwise": 0.6}, ce, llm_k=2)[0] == ["a", "b", "c", "d"]
