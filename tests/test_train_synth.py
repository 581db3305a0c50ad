"""``diver synth`` mechanics with fake chat models: parsing, near-copy filters, answerability check, output
in the finetune format."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("langchain_core")

from llm_fakes import StatusError, scripted_llm  # noqa: E402

from diver.llm.prompts import load_template  # noqa: E402
from diver.train.pairs import load_pairs, write_pairs  # noqa: E402
from diver.train.synth import SynthConfig, overlap_reason, parse_queries, run_synthesize  # noqa: E402

CORPUS = {
    "theorem/Pigeonhole": "Pigeonhole principle\nIf n items are put into m containers with n > m, then at least one "
    "container must contain more than one item.",
    "theorem/Bayes": "Bayes' theorem\nThe posterior probability equals the likelihood times the prior divided by "
    "the evidence.",
}
GOOD = [
    "Thirteen people are in a room; must two of them share a birth month, and why?",
    "A test for a rare disease is 99% accurate; how likely is a positive patient actually ill?",
]


def test_prompts_render() -> None:
    messages = load_template("synth_query").render(document="<document>x</document>", n=3)
    assert "exactly 3 lines" in messages[-1][1]
    assert "Answerable: yes" in load_template("synth_check").render(query="q", document="d")[-1][1]


def test_parse_queries_formats() -> None:
    assert parse_queries("Query: one two\nQuery: three four\nQuery: one two", 5) == ["one two", "three four"]
    assert parse_queries("<think>hmm Query: no</think>1. first one\n2) second one\n- third", 2) == ["first one", "second one"]
    assert parse_queries("Here you go:\nQuery 1: alpha beta\nnoise line", 3) == ["alpha beta"]
    assert parse_queries("", 3) == []


def test_near_copies_are_dropped() -> None:
    doc, config = CORPUS["theorem/Pigeonhole"], SynthConfig()
    assert overlap_reason("What does the pigeonhole principle say about boxes?", doc, config) == "names_title"
    assert overlap_reason("items containers container contain item more than one", doc, config) == "lexical_overlap"
    copied = "Show that then at least one container must contain more than one apple in my kitchen problem"
    assert overlap_reason(copied, doc, SynthConfig(max_overlap=1.0)) == "copied_span"
    assert overlap_reason("too short?", doc, config) == "too_short"
    assert overlap_reason(GOOD[0], doc, config) is None


def test_synth_writes_finetune_pairs(tmp_path: Path) -> None:
    def reply(prompt: str) -> str:
        good = GOOD[0] if "Pigeonhole" in prompt else GOOD[1]
        return f"Query: {good}\nQuery: What is Bayes' theorem and the pigeonhole principle?\n"

    writer, model = scripted_llm(reply, role="expander")
    pairs, report = run_synthesize(CORPUS, writer, SynthConfig(documents=5, per_document=2))
    assert report.documents == 2 and report.generated == 4 and report.kept == 2
    assert report.dropped == {"names_title": 2} and len(model.prompts) == 2
    assert {p.positive_id for p in pairs} == set(CORPUS) and {p.query for p in pairs} == set(GOOD)
    path = tmp_path / "synth.jsonl"
    write_pairs(path, pairs)
    assert load_pairs(path) == pairs  # the finetune format


def test_answerability_check_and_failures() -> None:
    writer, _ = scripted_llm(lambda p: f"Query: {GOOD[0]}", role="expander")
    checker, checks = scripted_llm(lambda p: "Answerable: no" if "Bayes" in p else "Answerable: yes")
    pairs, report = run_synthesize(CORPUS, writer, SynthConfig(check=True), checker)
    assert [p.positive_id for p in pairs] == ["theorem/Pigeonhole"]
    assert report.dropped == {"not_answerable": 1} and len(checks.prompts) == 2
    broken, _ = scripted_llm(lambda p: StatusError(400), role="expander")
    pairs, report = run_synthesize(CORPUS, broken, SynthConfig())
    assert pairs == [] and report.failed_documents == 2
