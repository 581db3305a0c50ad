"""The hub path run for real: a local copy of BRIGHT in xlangai/BRIGHT's layout (parquet per config and
domain split, the dataset card's configs block), read by ``datasets.load_dataset(<folder>)`` exactly as the
hub is (no monkeypatching), and ``diver eval -b bright --bright-source <folder>`` end to end on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diver.datasets.bright import DOMAINS, HubSource, load_bright, parse_source
from diver.datasets.bright_layout import build_hub_layout

datasets = pytest.importorskip("datasets")
pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def hub_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hub") / "BRIGHT"
    files = build_hub_layout(folder)
    assert files["examples"] == list(DOMAINS)
    return folder


def test_load_dataset_reads_the_copy_like_the_hub(hub_copy: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "hf-cache")
    for domain, count in (("biology", 103), ("theoremqa_theorems", 76), ("aops", 111)):
        table = datasets.load_dataset(str(hub_copy), "examples", split=domain, cache_dir=cache)
        assert table.num_rows == count
        assert set(table.column_names) >= {"id", "query", "gold_ids", "gold_ids_long", "excluded_ids"}
        assert all(isinstance(g, str) for row in table for g in row["gold_ids"])
    docs = datasets.load_dataset(str(hub_copy), "documents", split="theoremqa_theorems", cache_dir=cache)
    assert set(docs.column_names) == {"id", "content"} and docs.num_rows > 354
    assert "18695" in set(docs["id"])  # BRIGHT's gold id of the pigeonhole queries
    pigeon = docs.filter(lambda r: r["id"] == "18695")[0]["content"]
    assert pigeon.lower().startswith("pigeonhole")


def test_the_benchmark_loads_through_the_hub_source(hub_copy: Path, tmp_path: Path) -> None:
    source = HubSource(str(hub_copy), cache_dir=tmp_path / "hf-cache")
    bench = load_bright("theoremqa_theorems", source)
    assert len(bench.queries) == 76 and bench.comparable_to_bright
    corpus_ids = {d.id for d in bench.corpus}
    assert all(set(rel) <= corpus_ids for rel in bench.qrels.values())  # every gold id has its document
    assert isinstance(parse_source(str(hub_copy)), HubSource)
    with pytest.raises(Exception, match="cannot load"):  # a domain without documents in the copy
        list(load_bright("biology", source).corpus)


def test_diver_eval_runs_end_to_end_on_the_copy(hub_copy: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_DATASETS_CACHE=str(tmp_path / "hf-cache"),
               DIVER_DATA_DIR=str(tmp_path / "data"), DIVER_EMBEDDING__PROVIDER="hashing")  # fmt: skip
    out = tmp_path / "run"
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "diver.cli", "eval", "-b", "bright", "-d", "theoremqa_theorems,theoremqa_questions",
         "--bright-source", str(hub_copy), "-s", "bm25,hybrid", "--no-progress", "-o", str(out)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    for stage in ("bm25", "hybrid"):
        for domain in ("theoremqa_theorems", "theoremqa_questions"):
            row = metrics["stages"][stage]["domains"][domain]
            assert row["queries"] > 50 and 0.0 < row["mean"]["nDCG@10"] <= 1.0, (stage, domain)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert any(str(hub_copy.resolve()) in key for key in manifest["data_sha256"])
    assert manifest["models"]["prompts"] == {"query": "", "document": "", "query_source": "none",
                                             "document_source": "none"}  # which instruction was used  # fmt: skip
