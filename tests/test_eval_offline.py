"""``diver eval`` on the offline TheoremQA benchmark with the real engine (BM25 stage: the model-free
hashing embedder fills the dense side, so the test does not spend a minute embedding 354 theorems)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from diver.evals.cli import register


@pytest.mark.slow
def test_eval_theorems_offline_bm25(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("diver.engine")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DIVER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DIVER_EMBEDDING__PROVIDER", "hashing")
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    out = tmp_path / "run"
    args = [
        "eval",
        "--benchmark",
        "theoremqa-theorems-offline",
        "--stages",
        "bm25",
        "--out",
        str(out),
        "--no-progress",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "NOT comparable to published BRIGHT numbers" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert not metrics["comparable_to_bright"]
    ndcg = metrics["stages"]["bm25"]["average"]["nDCG@10"]
    assert 0.10 < ndcg < 0.40  # a plain BM25 measured about 0.23
    assert metrics["stages"]["bm25"]["domains"]["theoremqa-theorems-offline"]["queries"] == 76
    report = (out / "report.md").read_text()
    assert report.count("NOT comparable to published BRIGHT numbers") >= 2
    assert len((out / "run.bm25.theoremqa-theorems-offline.trec").read_text().splitlines()) > 76

    again = CliRunner().invoke(app, args)  # everything reused
    assert again.exit_code == 0, again.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reused"]["run_files"] == ["run.bm25.theoremqa-theorems-offline.trec"]
