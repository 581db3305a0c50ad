"""Benchmark loaders: offline TheoremQA builders, the vendored BRIGHT query side, local folders, the hub."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from diver.datasets import (
    DOMAINS,
    QUESTIONS,
    THEOREMS,
    HubSource,
    LocalSource,
    build_offline,
    find_data_root,
    load_bright,
    load_vendored_queries,
    parse_id_list,
)
from diver.datasets.theoremqa import theorem_id
from diver.errors import ConfigError, InputError

COUNTS = {
    "biology": 103,
    "earth_science": 116,
    "economics": 103,
    "psychology": 101,
    "robotics": 101,
    "stackoverflow": 117,
    "sustainable_living": 108,
    "leetcode": 142,
    "pony": 112,
    "aops": 111,
    "theoremqa_questions": 194,
    "theoremqa_theorems": 76,
}


def topics(domain: str) -> list[dict[str, Any]]:
    path = (
        find_data_root() / "bright" / "topics" / f"topics.bright-{domain.replace('_', '-')}-original.jsonl.gz"
    )
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


# ------------------------------------------------------------------ offline builders


def test_theorems_offline_counts_and_labels() -> None:
    bench = build_offline(THEOREMS)
    docs = list(bench.corpus)
    assert (len(bench.queries), len(docs), bench.corpus.size) == (76, 354, 354)
    ids = {d.id for d in docs}
    assert len(ids) == 354 and not any(c.isspace() for i in ids for c in i)
    assert bench.queries_without_relevant == [] and bench.notes == []
    assert all(len(rel) == 1 and set(rel) <= ids for rel in bench.qrels.values())
    assert not bench.comparable_to_bright
    first = docs[0]
    name = first.metadata["theorem"]
    assert first.id == theorem_id(name) and first.text.startswith(name + "\n")


def test_theorems_offline_relevance_follows_the_theoremqa_problem() -> None:
    bench = build_offline(THEOREMS)
    problems = {
        p["id"]: p for p in json.loads((find_data_root() / "theoremqa" / "theoremqa_test.json").read_text())
    }
    names = json.loads((find_data_root() / "theoremqa" / "all_theorems.json").read_text())
    by_lower = {n.lower(): n for n in names}
    for qid, rel in bench.qrels.items():
        theorem = problems[qid.removeprefix("TheoremQA_")]["theorem"]
        assert rel == {theorem_id(by_lower[theorem.lower()]): 1}


def test_questions_offline_counts_exclusions_and_labels() -> None:
    bench = build_offline(QUESTIONS)
    docs = list(bench.corpus)
    assert (len(bench.queries), len(docs)) == (194, 800)
    ids = {d.id for d in docs}
    assert all(i.startswith("TheoremQA_") for i in ids)
    assert bench.queries_without_relevant == [] and bench.notes == []
    rows = {r["id"]: r for r in topics("theoremqa_questions")}
    for qid, rel in bench.qrels.items():
        assert set(rel) == set(rows[qid]["gold_ids"]) & ids
        assert bench.excluded[qid] == set(rows[qid]["excluded_ids"]) - {"N/A"}
        assert qid in bench.excluded[qid]  # BRIGHT excludes the query's own problem
    doc = next(d for d in docs if d.id == "TheoremQA_jianyu_xu/Lah_number_6.json")
    assert doc.text.endswith("\nAnswer: 11760")


@pytest.mark.parametrize(
    "name,domain", [(THEOREMS, "theoremqa_theorems"), (QUESTIONS, "theoremqa_questions")]
)
def test_offline_query_text_is_the_query_field_never_reasoning(name: str, domain: str) -> None:
    bench = build_offline(name)
    for row in topics(domain):
        assert bench.queries[row["id"]] == row["query"]
        assert bench.queries[row["id"]] != row["reasoning"]


def test_data_root_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIVER_BENCHMARK_DATA", str(tmp_path))
    with pytest.raises(ConfigError, match="DIVER_BENCHMARK_DATA"):
        find_data_root()
    (tmp_path / "theoremqa").mkdir()
    assert find_data_root() == tmp_path


# ------------------------------------------------------------------ vendored query side


def test_parse_id_list_handles_na_and_string_forms() -> None:
    assert parse_id_list(["N/A"]) == []
    assert parse_id_list("['N/A']") == []
    assert parse_id_list("N/A") == []
    assert parse_id_list(None) == []
    assert parse_id_list(["a", "N/A", "b"]) == ["a", "b"]
    assert parse_id_list('["a", "b"]') == ["a", "b"]
    assert parse_id_list("['a', 'b']") == ["a", "b"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_vendored_queries_all_domains(domain: str) -> None:
    bench = load_vendored_queries(domain.replace("_", "-"))
    assert bench.domain == domain and len(bench.queries) == COUNTS[domain]
    rows = {r["id"]: r for r in topics(domain)}
    for qid, query in bench.queries.items():
        assert query == rows[qid]["query"]
        assert "N/A" not in bench.qrels[qid] and "N/A" not in bench.excluded[qid]
        assert set(bench.qrels[qid]) == set(rows[qid]["gold_ids"]) - {"N/A"}
    assert bench.queries_without_relevant == []


def test_vendored_long_uses_gold_ids_long() -> None:
    bench = load_vendored_queries("biology", long=True)
    row = topics("biology")[0]
    assert set(bench.qrels[row["id"]]) == set(row["gold_ids_long"])
    assert all(not ex for ex in bench.excluded.values())  # biology's excluded_ids are all ["N/A"]
    with pytest.raises(InputError, match="no long documents"):
        load_vendored_queries("leetcode", long=True)


def test_unknown_domain_is_refused() -> None:
    with pytest.raises(InputError, match="unknown BRIGHT domain"):
        load_vendored_queries("astrology")


# ------------------------------------------------------------------ local folder and hub

EXAMPLES = [
    {
        "id": "0",
        "query": "why do moths fly to lamps",
        "reasoning": "LEAK-R",
        "gold_answer": "LEAK-A",
        "gold_ids": ["moth/a_0.txt", "moth/a_1.txt"],
        "gold_ids_long": ["moth/a.txt"],
        "excluded_ids": ["N/A"],
    },
    {
        "id": "1",
        "query": "how do plants sense gravity",
        "reasoning": "LEAK-R",
        "gold_answer": "LEAK-A",
        "gold_ids": ["plant/g_0.txt"],
        "gold_ids_long": ["plant/g.txt"],
        "excluded_ids": ["moth/a_0.txt"],
    },
]
DOCS = [
    {"id": "moth/a_0.txt", "content": "Moths navigate by the moon."},
    {"id": "moth/a_1.txt", "content": "Artificial light confuses moths."},
    {"id": "plant/g_0.txt", "content": "Statoliths in root cells sense gravity."},
    {"id": "empty.txt", "content": "   "},
]
LONG_DOCS = [
    {"id": "moth/a.txt", "content": "Moths navigate by the moon. Artificial light confuses moths."},
    {"id": "plant/g.txt", "content": "Statoliths in root cells sense gravity."},
]
REASON = [
    {**EXAMPLES[0], "query": "GPT4 reasoning about moths"},
    {**EXAMPLES[1], "query": "GPT4 about plants"},
]


def test_hub_loader_with_only_load_dataset_mocked(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    calls: list[tuple[str, str, str]] = []
    tables = {"examples": EXAMPLES, "documents": DOCS, "long_documents": LONG_DOCS, "gpt4_reason": REASON}

    def fake_load_dataset(path: str, name: str, split: str, **kwargs: Any) -> list[dict[str, Any]]:
        calls.append((path, name, split))
        return [dict(r) for r in tables[name]]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    bench = load_bright("biology", HubSource())
    assert bench.queries == {"0": "why do moths fly to lamps", "1": "how do plants sense gravity"}
    assert bench.qrels["0"] == {"moth/a_0.txt": 1, "moth/a_1.txt": 1}
    assert bench.excluded == {"0": set(), "1": {"moth/a_0.txt"}}
    docs = list(bench.corpus)
    assert [d.id for d in docs] == [
        "moth/a_0.txt",
        "moth/a_1.txt",
        "plant/g_0.txt",
    ]  # the empty one is skipped
    assert calls == [("xlangai/BRIGHT", "examples", "biology"), ("xlangai/BRIGHT", "documents", "biology")]
    assert "LEAK" not in json.dumps(bench.queries)

    calls.clear()
    long = load_bright("biology", HubSource(), long=True)
    assert long.qrels["0"] == {"moth/a.txt": 1}
    assert [d.id for d in long.corpus] == ["moth/a.txt", "plant/g.txt"]
    assert calls[-1] == ("xlangai/BRIGHT", "long_documents", "biology")

    reasoned = load_bright("biology", HubSource(), query_config="gpt4_reason", with_corpus=False)
    assert reasoned.queries["0"] == "GPT4 reasoning about moths"
    assert ("xlangai/BRIGHT", "gpt4_reason", "biology") in calls


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_local_folder_jsonl_and_parquet(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "examples" / "earth-science.jsonl", EXAMPLES)
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    (tmp_path / "documents").mkdir()
    pq.write_table(
        pa.Table.from_pylist(DOCS), tmp_path / "documents" / "earth_science-00000-of-00001.parquet"
    )
    bench = load_bright("earth_science", LocalSource(tmp_path))
    assert len(bench.queries) == 2 and bench.qrels["1"] == {"plant/g_0.txt": 1}
    assert len(list(bench.corpus)) == 3
    assert any(k.endswith(".parquet") for k in bench.corpus.fingerprint())


def test_local_folder_without_examples_falls_back_to_vendored(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "documents" / "pony.jsonl", [{"id": "x", "content": "pony lang"}])
    bench = load_bright("pony", LocalSource(tmp_path))
    assert len(bench.queries) == 112
    assert any("topics.bright-pony" in k for k in bench.sources)


def test_vendored_source_has_no_corpus() -> None:
    from diver.datasets import VendoredSource

    with pytest.raises(InputError, match="no documents for biology"):
        load_bright("biology", VendoredSource())


def test_hub_unreachable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    from diver.errors import StateError

    def offline(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Couldn't reach 'xlangai/BRIGHT' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(StateError, match="local:PATH"):
        load_bright("biology", HubSource())
