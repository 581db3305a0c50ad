"""Pointwise/listwise parsers, ranking repair, windows, merge, and the rerank stages with fake chat models."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llm_fakes import scripted_llm

from diver.config import RerankSettings
from diver.hits import SearchHit
from diver.llm.client import LLMUsage
from diver.stages.rerank import registry
from diver.stages.rerank.choice import merge_all
from diver.stages.rerank.listwise import rerank_listwise
from diver.stages.rerank.parsers import (
    apply_ranking,
    combine_pointwise,
    merge_rankings,
    parse_ranking,
    parse_relevance_score,
    pointwise_order,
    rank_scores,
    window_spans,
)
from diver.stages.rerank.pointwise import rerank_pointwise

# --- pointwise score parser ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Relevance score: 8", 8.0),
        ("The document helps.\nRelevance score: 3", 3.0),
        ("relevance score:7", 7.0),
        ("**Relevance Score:** 7.5", 7.5),
        ("Relevance score: [6]", 6.0),
        ("Relevance score: 8/10", 8.0),
        ("Relevance score: 8 out of 10", 8.0),
        ("Relevance score: 85/100", 8.5),
        ("Relevance score: ten", 10.0),
        ("Relevance score: Zero", 0.0),
        ("I would rate it 8/10.", 8.0),
        ("Score: 4", 4.0),
        ("7", 7.0),
        ("  9.  ", 9.0),
        ("Relevance score: 2\nOn reflection... Relevance score: 6", 6.0),
        ("<think>Relevance score: 2 maybe</think>\nRelevance score: 9", 9.0),
    ],
)
def test_parse_relevance_score_accepts(reply: str, expected: float) -> None:
    assert parse_relevance_score(reply) == pytest.approx(expected)


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        "This document is very relevant.",
        "Relevance score: 11",
        "Relevance score: 12/10",
        "Relevance score: X",
        "Relevance score: seventy",
        "<think>Relevance score: 3 ... still thinking",
        "Relevance score: 5/0",
        "1234",
    ],
)
def test_parse_relevance_score_rejects(reply: str) -> None:
    assert parse_relevance_score(reply) is None


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_parse_relevance_score_fuzz_never_raises_and_stays_in_range(text: str) -> None:
    score = parse_relevance_score(text)
    assert score is None or 0.0 <= score <= 10.0


@given(st.integers(0, 10), st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
@settings(max_examples=200, deadline=None)
def test_parse_relevance_score_fuzz_final_label_wins(value: int, prefix: str) -> None:
    prefix = re.sub(r"(?i)(score|think|/|out\s+of)", "", prefix)
    assert parse_relevance_score(f"{prefix}\nRelevance score: {value}") == value


# --- listwise ranking parser -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "count", "order", "method"),
    [
        ('```json\n{"ranking": [3, 1, 2]}\n```', 3, [3, 1, 2], "json"),
        ("[2, 1]", 2, [2, 1], "json"),
        ('Here you go: {"ids": ["[2]", "3", 1]}', 3, [2, 3, 1], "json"),
        ('```json\n{"ranking": [3, 1, 2\n```', 3, [3, 1, 2], "repaired"),
        ('```json\n{"ranking": [3, 1,', 3, [3, 1], "repaired"),
        ("[5, 1, 0, -1, 2]", 3, [1, 2], "json"),
        ("[2, 2, 1, 2]", 3, [2, 1], "json"),
        ("[true, 1]", 2, [1], "json"),
        ("[2.0, 1]", 2, [2, 1], "json"),
        ('[{"id": 2}, {"id": 1}]', 2, [2, 1], "json"),
        ("<think>[1, 2, 3]</think>\n```json\n[3, 2, 1]\n```", 3, [3, 2, 1], "json"),
        ("[2] > [3] > [1]", 3, [2, 3, 1], "arrows"),
        ("Best: [4] > [9] > [1]", 4, [4, 1], "arrows"),
        ('draft [1, 2] then final {"ranking": [2, 1]}', 2, [2, 1], "json"),
    ],
)
def test_parse_ranking_accepts(reply: str, count: int, order: list[int], method: str) -> None:
    parsed = parse_ranking(reply, count)
    assert parsed.order == order
    assert parsed.method == method


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "I think document two is the best one.",
        "<think>[1, 2]",
        "[7, 8, 9]",
        '{"ranking": "first"}',
        "```json\nnot json at all\n```",
        "[]",
    ],
)
def test_parse_ranking_failures(reply: str) -> None:
    parsed = parse_ranking(reply, 3)
    assert parsed.failed and parsed.order == [] and parsed.method == "none"


def test_parse_ranking_counts_dropped_ids() -> None:
    assert parse_ranking("[9, 1, 1, 0, 2]", 3).dropped == 3


@given(st.text(max_size=400), st.integers(1, 60))
@settings(max_examples=300, deadline=None)
def test_parse_ranking_fuzz_only_valid_unique_ids(text: str, count: int) -> None:
    parsed = parse_ranking(text, count)
    assert len(parsed.order) == len(set(parsed.order))
    assert all(1 <= i <= count for i in parsed.order)


@given(st.permutations(list(range(1, 21))), st.sampled_from(["{}", "```json\n{}\n```", '{{"ranking": {}}}']))
@settings(max_examples=100, deadline=None)
def test_parse_ranking_fuzz_recovers_permutations(perm: list[int], wrapper: str) -> None:
    assert parse_ranking("ok\n" + wrapper.format(json.dumps(perm)), 20).order == perm


@given(st.lists(st.integers(-5, 30), max_size=40), st.integers(1, 20))
@settings(max_examples=200, deadline=None)
def test_apply_ranking_is_a_permutation(raw: list[int], count: int) -> None:
    prior = [f"d{i}" for i in range(count)]
    parsed = parse_ranking(json.dumps(raw), count)
    assert sorted(apply_ranking(prior, parsed.order)) == sorted(prior)


def test_apply_ranking_keeps_omitted_in_prior_order() -> None:
    assert apply_ranking(["a", "b", "c", "d"], [3, 1]) == ["c", "a", "b", "d"]


def test_window_spans() -> None:
    assert window_spans(5, 20, 10) == [(0, 5)]
    assert window_spans(0, 20, 10) == []
    assert window_spans(25, 20, 10) == [(5, 25), (0, 20)]
    spans = window_spans(100, 20, 10)
    assert spans[0] == (80, 100) and spans[-1] == (0, 20) and len(spans) == 9


# --- merge (DIVER's rerank_merge_point_and_list.py: reassign_score, then 0.6 * point + 0.4 * list) -------


def test_rank_scores_formula() -> None:
    # reassign_score: for rank, did in enumerate(...): -math.log(rank + 1) -> the top document gets 0
    assert rank_scores(["a", "b", "c"]) == {"a": 0.0, "b": -math.log(2), "c": -math.log(3)}


def test_merge_rankings_reference_hand_computed() -> None:
    # pointwise a>b>c>d, listwise d>c>b>a, 0.6/0.4. Ranks from 0 give a, d, b, c; ranks from 1 would
    # give a, b, d, c (d: 0.6*-ln5 + 0.4*-ln2 = -1.243 < b: 0.6*-ln3 + 0.4*-ln4 = -1.214).
    order, final = merge_rankings(
        ["a", "b", "c", "d"], [(["a", "b", "c", "d"], 0.6), (["d", "c", "b", "a"], 0.4)]
    )
    assert order == ["a", "d", "b", "c"]
    assert final["a"] == pytest.approx(0.4 * -math.log(4))  # -0.5545
    assert final["d"] == pytest.approx(0.6 * -math.log(4))  # -0.8318
    assert final["b"] == pytest.approx(0.6 * -math.log(2) + 0.4 * -math.log(3))  # -0.8553
    assert final["c"] == pytest.approx(0.6 * -math.log(3) + 0.4 * -math.log(2))  # -0.9365


def test_merge_rankings_weights_decide() -> None:
    prior = ["a", "b", "c"]
    order, final = merge_rankings(prior, [(["c", "b", "a"], 0.6), (["a", "b", "c"], 0.4)])
    assert order == ["c", "a", "b"]  # c: 0.4*-ln3 = -0.439; a: 0.6*-ln3 = -0.659; b: -ln2 = -0.693
    assert final == pytest.approx({"c": 0.4 * -math.log(3), "a": 0.6 * -math.log(3), "b": -math.log(2)})
    order, _ = merge_rankings(prior, [(["c", "b", "a"], 0.4), (["a", "b", "c"], 0.6)])
    assert order == ["a", "c", "b"]


def test_merge_rankings_ties_follow_the_pointwise_order() -> None:
    # DIVER sorts the merged dict stably, and that dict is in pointwise order: a tie goes to pointwise
    order, final = merge_rankings(["a", "b"], [(["b", "a"], 0.5), (["a", "b"], 0.5)])
    assert final["a"] == final["b"] and order == ["b", "a"]


def test_merge_rankings_missing_document_scores_the_next_rank() -> None:
    order, final = merge_rankings(["a", "b", "c"], [(["b", "a"], 1.0)])
    assert order == ["b", "a", "c"] and final["c"] == pytest.approx(-math.log(3))


# --- pointwise blend (DIVER's rerank_pointwise.py) -------------------------------------------------


def test_combine_pointwise_reference_formula() -> None:
    # 0.5 * score/10 + 0.5 * retriever score; a reply without a score counts 0 (DIVER: scores.append(0))
    combined = combine_pointwise({"a": 8.0, "b": None, "c": 2.0}, {"a": 0.25, "b": 1.0, "c": 0.5}, 0.5)
    assert combined == pytest.approx({"a": 0.4 + 0.125, "b": 0.5, "c": 0.1 + 0.25})


def test_combine_pointwise_reference_keeps_the_retrieval_scale() -> None:
    # no re-normalisation over the candidates: scores 0.40..0.42 stay as they are
    combined = combine_pointwise({"a": 0.0, "b": 0.0}, {"a": 0.42, "b": 0.40}, 0.5)
    assert combined == pytest.approx({"a": 0.21, "b": 0.20})


def test_pointwise_order_ties_prefer_the_higher_llm_score_then_retrieval_rank() -> None:
    # DIVER: candidates sorted by LLM score (stable over retrieval order), then stably by the blend
    llm = {"a": 0.0, "b": 5.0, "c": 5.0}
    assert pointwise_order(["a", "b", "c"], llm, {"a": 0.25, "b": 0.25, "c": 0.25}) == ["b", "c", "a"]


def test_combine_pointwise_renormalised_imputes_missing_with_mean_llm_score() -> None:
    combined = combine_pointwise(
        {"a": 10.0, "b": None, "c": 0.0}, {"a": 1.0, "b": 3.0, "c": 2.0}, 0.5, "renormalised"
    )
    assert combined["a"] == pytest.approx(0.5)
    assert combined["b"] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)  # missing: mean LLM score
    assert combined["c"] == pytest.approx(0.25)


def test_combine_pointwise_renormalised_all_missing_uses_retrieval() -> None:
    combined = combine_pointwise({"a": None, "b": None}, {"a": 1.0, "b": 3.0}, 0.5, "renormalised")
    assert combined == {"a": 0.0, "b": 1.0}


# --- stages with fake chat models -------------------------------------------------------------------

DOCS = {f"d{i}": f"document number {i} about topic{i}" for i in range(1, 7)}


def _candidates() -> list[SearchHit]:
    """Hybrid scores 0.875, 0.75, ..., 0.25 (exact in binary, so hand-computed blends compare exactly)."""
    return [SearchHit(id=d, rank=i, score=1.0 - i / 8) for i, d in enumerate(DOCS, 1)]


def _score_by_doc(prompt: str) -> str:
    number = int(re.search(r"document number (\d)", prompt).group(1))
    return {1: "Relevance score: 1", 2: "no idea", 6: "Relevance score: 10"}.get(number, "Relevance score: 5")


async def test_rerank_pointwise_scores_and_records_parse_failures() -> None:
    llm, model = scripted_llm(_score_by_doc)
    usage = LLMUsage()
    events: list[tuple[int, int]] = []
    result = await rerank_pointwise(
        llm, "q", _candidates(), dict(DOCS), RerankSettings(), usage, lambda d, t: events.append((d, t))
    )
    assert result.parse_failures == ["d2"]
    assert result.llm_scores["d2"] is None and result.llm_scores["d6"] == 10.0
    # DIVER: 0.5 * LLM/10 + 0.5 * hybrid, no score = 0. d1 .05+.4375, d2 0+.375, d3 .25+.3125,
    # d4 .25+.25, d5 .25+.1875, d6 .5+.125
    assert result.combined == pytest.approx(
        {"d1": 0.4875, "d2": 0.375, "d3": 0.5625, "d4": 0.5, "d5": 0.4375, "d6": 0.625}
    )
    assert result.order == ["d6", "d3", "d4", "d1", "d5", "d2"]
    assert usage.calls == 6 and len(model.prompts) == 6
    assert events[-1] == (6, 6)
    assert "<document>" in model.prompts[0] and "Relevance score: X" in model.prompts[0]


async def test_rerank_pointwise_call_failures_are_recorded() -> None:
    llm, _ = scripted_llm(lambda p: ValueError("down") if "number 3" in p else "Relevance score: 5")
    usage = LLMUsage()
    result = await rerank_pointwise(llm, "q", _candidates(), dict(DOCS), RerankSettings(), usage)
    assert result.call_failures == ["d3"] and usage.failures == 1


async def test_rerank_pointwise_uses_domain_prompt() -> None:
    llm, model = scripted_llm(lambda p: "Relevance score: 5")
    await rerank_pointwise(
        llm, "q", _candidates()[:1], dict(DOCS), RerankSettings(domain_kind="coding"), LLMUsage()
    )
    assert "programming question" in model.prompts[0]


async def test_rerank_listwise_single_call() -> None:
    llm, model = scripted_llm(lambda p: '```json\n{"ranking": [6, 5, 4, 3, 2, 1]}\n```')
    result = await rerank_listwise(llm, "q", _candidates(), dict(DOCS), RerankSettings(), LLMUsage())
    assert result.order == ["d6", "d5", "d4", "d3", "d2", "d1"]
    assert result.calls == 1 and result.windows == 1 and not result.fallback
    assert "[6] <document>" in model.prompts[0]


async def test_rerank_listwise_repairs_partial_output() -> None:
    llm, _ = scripted_llm(lambda p: "[4, 4, 99, 2]")
    result = await rerank_listwise(llm, "q", _candidates(), dict(DOCS), RerankSettings(), LLMUsage())
    assert result.order == ["d4", "d2", "d1", "d3", "d5", "d6"]
    assert result.dropped_ids == 2


async def test_rerank_listwise_sliding_windows_when_context_is_small() -> None:
    docs = {f"d{i}": ("word " * 300) + f"document number {i}" for i in range(1, 31)}
    cands = [SearchHit(id=d, rank=i, score=1.0) for i, d in enumerate(docs, 1)]
    llm, model = scripted_llm(lambda p: "[2, 1]", context_window=1024, max_tokens=64)
    rs = RerankSettings(window_size=10, window_step=5)
    result = await rerank_listwise(llm, "q", cands, dict(docs), rs, LLMUsage())
    assert result.windows == 5 and result.calls == 5 and len(model.prompts) == 5
    # windows [20,30) [15,25) [10,20) [5,15) [0,10), bottom first; each reply swaps its first two
    expected = [2, 1, 3, 4, 5, 7, 6, 8, 9, 10, 12, 11, 13, 14, 15, 17, 16, 18, 19, 20, 22, 21]
    expected += list(range(23, 31))
    assert result.order == [f"d{i}" for i in expected]
    assert not result.fallback


async def test_rerank_listwise_sliding_windows_lift_the_bottom_document_to_the_top() -> None:
    docs = {f"d{i}": f"document number {i} " + "word " * 300 for i in range(1, 31)}
    cands = [SearchHit(id=d, rank=i, score=1.0) for i, d in enumerate(docs, 1)]

    def prefer_30(prompt: str) -> str:  # the LLM always puts document 30 first, when it is in the window
        found = re.search(r"\[(\d+)\] <document>\ndocument number 30 ", prompt)
        return f"[{found.group(1)}]" if found else "[1]"

    llm, model = scripted_llm(prefer_30, context_window=1024, max_tokens=64)
    rs = RerankSettings(window_size=10, window_step=5)
    result = await rerank_listwise(llm, "q", cands, dict(docs), rs, LLMUsage())
    assert result.windows == 5 and not result.fallback
    # 30 climbs window by window: position 30 -> 21 -> 16 -> 11 -> 6 -> 1; the rest keep their order
    assert result.order == ["d30"] + [f"d{i}" for i in range(1, 30)]
    assert all("document number 30 " in p for p in model.prompts)


async def test_rerank_listwise_total_failure_keeps_prior_order() -> None:
    llm, _ = scripted_llm(lambda p: "I cannot rank these.")
    result = await rerank_listwise(llm, "q", _candidates(), dict(DOCS), RerankSettings(), LLMUsage())
    assert result.fallback and result.parse_failures == 1
    assert result.order == list(DOCS)


async def test_rerank_listwise_call_error_falls_back() -> None:
    llm, _ = scripted_llm(lambda p: RuntimeError("server gone"))
    result = await rerank_listwise(llm, "q", _candidates(), dict(DOCS), RerankSettings(), LLMUsage())
    assert result.fallback and result.call_failures == 1 and result.order == list(DOCS)


async def test_merge_reranked_combines_both() -> None:
    llm, _ = scripted_llm(_score_by_doc)
    pw = await rerank_pointwise(llm, "q", _candidates(), dict(DOCS), RerankSettings(), LLMUsage())
    llm2, _ = scripted_llm(lambda p: "[1, 2, 3, 4, 5, 6]")
    lw = await rerank_listwise(llm2, "q", _candidates(), dict(DOCS), RerankSettings(), LLMUsage())
    weights = registry.merge_weights(RerankSettings())
    order, final = merge_all(list(DOCS), {"pointwise": pw.order, "listwise": lw.order}, weights)
    # pointwise d6 d3 d4 d1 d5 d2 (see above), listwise d1..d6; 0.6 * -ln(r_p + 1) + 0.4 * -ln(r_l + 1):
    # d6 -.717, d1 -.832, d3 -.855, d4 -1.214, d2 -1.352, d5 -1.609
    assert order == ["d6", "d1", "d3", "d4", "d2", "d5"]
    assert final["d6"] == pytest.approx(0.4 * -math.log(6))
    assert final["d1"] == pytest.approx(0.6 * -math.log(4))
    only, scores = merge_all(list(DOCS), {}, weights)
    assert only == list(DOCS) and scores == {}
