"""`diver eval` (a real process) with a scripted OpenAI-compatible server that records every prompt: a
query's excluded document stays out of every round, every stage and every prompt, even when the
expansion makes it the best match (it came back #1 in rounds >= 1 when the rounds' searches ignored
``exclude``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from openai_recorder import RecordingServer

from diver.evals.trec import read_run

pytest.importorskip("langgraph")
pytest.importorskip("langchain_openai")

MARKERS = {"q0": "MARKERZEBRAEXCLUDED", "q1": "MARKERLEAFEXCLUDED"}  # in each query's excluded document only
EXAMPLES = [
    {"id": "q0", "query": "which animal has stripes on the savannah", "gold_ids": ["animal_1.txt"],
     "gold_ids_long": ["N/A"], "excluded_ids": ["zebra_secret.txt"], "reasoning": "", "gold_answer": ""},
    {"id": "q1", "query": "why do leaves change colour in autumn", "gold_ids": ["leaf_0.txt"],
     "gold_ids_long": ["N/A"], "excluded_ids": ["leaf_secret.txt"], "reasoning": "", "gold_answer": ""},
]  # fmt: skip
DOCS = [
    {"id": "zebra_secret.txt",
     "content": f"{MARKERS['q0']} zebra okapi giraffe stripes savannah herd zebra okapi giraffe stripes savannah"},
    {"id": "leaf_secret.txt",
     "content": f"{MARKERS['q1']} chlorophyll anthocyanin carotenoid autumn leaves chlorophyll anthocyanin"},
    {"id": "animal_1.txt", "content": "Zebras live on the African savannah; their stripes confuse flies."},
    {"id": "leaf_0.txt", "content": "In autumn leaves lose chlorophyll and show yellow carotenoids."},
] + [{"id": f"noise_{i}.txt", "content": f"Unrelated text number {i} about bread, trains and ünïcode {i * 7}."}
     for i in range(30)]  # fmt: skip


def reply(prompt: str) -> str:
    if "Relevance score" in prompt:
        return "Relevance score: 8"
    if '"ranking"' in prompt or "candidate documents" in prompt:
        count = len(re.findall(r"^\[\d+\] <document>", prompt, flags=re.M))
        return "```json\n" + json.dumps({"ranking": list(range(1, count + 1))}) + "\n```"
    if "savannah" in prompt:  # the expansion names the excluded document's words, not its marker
        return "<think>x</think>zebra okapi giraffe stripes savannah herd zebra okapi giraffe"
    return "<think>x</think>chlorophyll anthocyanin carotenoid autumn leaves chlorophyll anthocyanin"


def bright_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "bright"
    for config, rows in (("examples", EXAMPLES), ("documents", DOCS)):
        (folder / config).mkdir(parents=True)
        (folder / config / "biology.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def check(prompts: list[str], run_dir: Path) -> None:
    expansion_prompts = [p for p in prompts if "savannah" in p and "Relevance score" not in p and "ranking" not in p]
    assert len(expansion_prompts) >= 2, "both expansion rounds must have run"
    assert any("Relevance score" in p for p in prompts) and any('"ranking"' in p for p in prompts)
    for example in EXAMPLES:  # a prompt about a query never holds that query's excluded document
        about = [p for p in prompts if example["query"] in p]
        assert len(about) > 10, example["id"]
        assert not [p for p in about if MARKERS[example["id"]] in p], f"{example['id']}: excluded text shown"
    for stage in ("hybrid", "expand", "rerank"):
        run = read_run(run_dir / f"run.{stage}.biology.trec")
        for qid, ranking in run.items():
            excluded = next(e["excluded_ids"] for e in EXAMPLES if e["id"] == qid)
            assert not {d for d, _ in ranking} & set(excluded), (stage, qid)


@pytest.mark.parametrize("assembly", ["fit", "concat", "separate"])
def test_in_process_eval_over_an_engine_never_shows_excluded_ids(tmp_path: Path, assembly: str) -> None:
    """The eval runner over an in-process engine (the path where round >= 1 searches bypassed exclusion),
    with every query-assembly variant the rounds may use."""
    from diver.config import load_settings
    from diver.engine import Engine
    from diver.evals.runner import EvalConfig, run_eval

    folder = bright_folder(tmp_path)
    with RecordingServer(reply) as server:
        model = {"base_url": server.base_url, "model": "scripted", "max_retries": 0}
        settings = load_settings(
            data_dir=tmp_path / "data", embedding={"provider": "hashing"}, search={"assembly": assembly},
            llm={"expander": model, "reranker": model, "cache": False}, rerank={"rerank_k": 10},
            expansion={"stop_overlap": 1.0},
        )  # fmt: skip
        config = EvalConfig(benchmark="bright", domains=["biology"], bright_source=f"local:{folder}",
                            stages=["hybrid", "expand", "rerank"], out_dir=tmp_path / "run", progress=False)  # fmt: skip
        with Engine(settings) as engine:
            run_eval(config, settings, engine=engine)
        check(server.prompts, tmp_path / "run")


def test_excluded_ids_never_reach_rankings_or_prompts(tmp_path: Path) -> None:
    folder = bright_folder(tmp_path)
    with RecordingServer(reply) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}
        env.update(HF_HUB_OFFLINE="1", DIVER_DATA_DIR=str(tmp_path / "data"), DIVER_EMBEDDING__PROVIDER="hashing",
                   DIVER_LLM__CACHE="false", DIVER_RERANK__RERANK_K="10", DIVER_EXPANSION__STOP_OVERLAP="1.0")  # fmt: skip
        for role in ("EXPANDER", "RERANKER"):
            env[f"DIVER_LLM__{role}__BASE_URL"] = server.base_url
            env[f"DIVER_LLM__{role}__MODEL"] = "scripted"
            env[f"DIVER_LLM__{role}__MAX_RETRIES"] = "0"
        proc = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "diver.cli", "eval", "-b", "bright", "-d", "biology", "--bright-source",
             f"local:{folder}", "-s", "hybrid,expand,rerank", "--no-progress", "-o", str(tmp_path / "run")],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        prompts = server.prompts
    check(prompts, tmp_path / "run")


def test_eval_retriever_excludes_in_the_rounds_with_expansions(tmp_path: Path) -> None:
    """The eval's retriever (``ExcludingRetriever``) under the deep-search graph, over an engine collection:
    round >= 1 searches the query with its expansions through query assembly, and must exclude there too
    (on main 27f408c that search went around the retriever: the excluded document came back #1 and its
    text reached the pointwise and listwise prompts)."""
    from diver.config import load_settings
    from diver.engine import Engine
    from diver.evals.llm_stages import ExcludingRetriever
    from diver.graph.run import run_deep_search
    from diver.text.documents import Document

    with RecordingServer(reply) as server:
        model = {"base_url": server.base_url, "model": "scripted", "max_retries": 0}
        settings = load_settings(data_dir=tmp_path, embedding={"provider": "hashing"}, rerank={"rerank_k": 10},
                                 llm={"expander": model, "reranker": model, "cache": False},
                                 expansion={"stop_overlap": 1.0})  # fmt: skip
        with Engine(settings) as engine:
            col = engine.collection("exclusion", create=True)
            col.upsert([Document(id=d["id"], text=d["content"]) for d in DOCS])
            result = run_deep_search(ExcludingRetriever(col, {"zebra_secret.txt"}), EXAMPLES[0]["query"], settings,
                                     context={"k": 10, "pointwise": True, "listwise": True})  # fmt: skip
    assert result.rounds == 2 and all(r.expansions for r in result.expansions)
    assert "zebra_secret.txt" not in [h.id for h in result.hits]
    assert result.hits[0].id == "animal_1.txt"
    assert any("Relevance score" in p for p in server.prompts)
    assert not [p for p in server.prompts if MARKERS["q0"] in p]
