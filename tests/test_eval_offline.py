"""``diver eval`` on the offline TheoremQA benchmark with the real engine: bm25, dense and hybrid against
recorded figures (the model-free hashing embedder fills the dense side, so the test does not spend a
minute embedding 354 theorems; its dense numbers say nothing about a semantic model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from diver.evals.cli import register

# Measured on this offline set (76 queries, 354 theorems), hashing embedder: recorded values, so a change
# in BM25, fusion or the metrics shows up here. Re-measure with
#   DIVER_EMBEDDING__PROVIDER=hashing diver eval -b theoremqa-theorems-offline -s bm25,dense,hybrid
NDCG10 = {"bm25": 0.2414, "dense": 0.0657, "hybrid@0.7": 0.1654, "hybrid@0.5": 0.2203}
TOLERANCE = 0.005


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app


@pytest.mark.slow
def test_eval_theorems_offline_recorded_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("diver.index.engine")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DIVER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DIVER_EMBEDDING__PROVIDER", "hashing")
    app = _app()
    out = tmp_path / "run"
    args = ["eval", "--benchmark", "theoremqa-theorems-offline", "--stages", "bm25,dense,hybrid"]
    args += ["--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "NOT comparable to published BRIGHT numbers" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert not metrics["comparable_to_bright"]
    ndcg = {s: metrics["stages"][s]["average"]["nDCG@10"] for s in ("bm25", "dense", "hybrid")}
    assert ndcg["bm25"] == pytest.approx(NDCG10["bm25"], abs=TOLERANCE)
    assert ndcg["dense"] == pytest.approx(NDCG10["dense"], abs=TOLERANCE)
    # theoremqa theorems: DIVER's per-domain dense weight 0.7 (library default 0.5), recorded
    assert ndcg["hybrid"] == pytest.approx(NDCG10["hybrid@0.7"], abs=TOLERANCE)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fusion"]["theoremqa-theorems-offline"]["w_dense"] == 0.7
    assert metrics["stages"]["bm25"]["domains"]["theoremqa-theorems-offline"]["queries"] == 76
    report = (out / "report.md").read_text()
    assert report.count("NOT comparable to published BRIGHT numbers") >= 2
    assert "Hybrid fusion w_dense: theoremqa-theorems-offline 0.7" in report
    assert len((out / "run.bm25.theoremqa-theorems-offline.trec").read_text().splitlines()) > 76

    again = CliRunner().invoke(app, args)  # everything reused
    assert again.exit_code == 0, again.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["reused"]["run_files"]) == 3

    # an explicit fusion.w_dense wins over the per-domain weight (the collection is reused)
    monkeypatch.setenv("DIVER_FUSION__W_DENSE", "0.5")
    out05 = tmp_path / "run05"
    half = CliRunner().invoke(app, [*args[:4], "hybrid", "--out", str(out05), "--no-progress"])
    assert half.exit_code == 0, half.output
    hybrid05 = json.loads((out05 / "metrics.json").read_text())["stages"]["hybrid"]["average"]["nDCG@10"]
    assert hybrid05 == pytest.approx(NDCG10["hybrid@0.5"], abs=TOLERANCE)
    assert ndcg["bm25"] > hybrid05 > ndcg["hybrid"] > ndcg["dense"]  # the hashing "dense" side is weak
