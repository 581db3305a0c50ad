"""Quality with the Milvus backend vs the default one, in one run: nDCG@10 of bm25, dense and hybrid on both
offline TheoremQA sets (``diver eval``), the Milvus side on a real `milvus-lite server`.

The BM25 terms are the same (DIVER's tokenizer makes them for both); the scoring differs: the default
backend scores with bm25s over the whole collection, milvus-lite's BM25 function computes its statistics
per segment (a Milvus server over the whole collection). Dense uses the model-free hashing embedder here
(fast; MiniLM figures are in docs/scaling.md). Hybrid must stay within 2 points of nDCG@10."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from diver.evals.cli import register

pytest.importorskip("pymilvus")
SETS = ("theoremqa-theorems-offline", "theoremqa-questions-offline")


def _eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, benchmark: str, backend: str, env: dict[str, str]) -> dict:
    app = typer.Typer()
    register(app)
    app.callback()(lambda: None)
    monkeypatch.setenv("DIVER_DATA_DIR", str(tmp_path / f"data-{backend}"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / f"run-{backend}"
    args = ["eval", "--benchmark", benchmark, "--stages", "bm25,dense,hybrid", "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for key in env:
        monkeypatch.delenv(key)
    metrics = json.loads((out / "metrics.json").read_text())
    return {s: metrics["stages"][s]["average"]["nDCG@10"] for s in ("bm25", "dense", "hybrid")}


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", SETS)
def test_milvus_backend_quality_matches_the_default(tmp_path, monkeypatch, milvus_server, benchmark):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DIVER_EMBEDDING__PROVIDER", "hashing")
    default = _eval(tmp_path, monkeypatch, benchmark, "default", {})
    milvus = _eval(tmp_path, monkeypatch, benchmark, "milvus", {
        "DIVER_STORE__BACKEND": "milvus", "DIVER_STORE__MILVUS_URI": milvus_server.uri,
        "DIVER_STORE__MILVUS_PREFIX": "q" + secrets.token_hex(4)})  # fmt: skip
    print(f"{benchmark} nDCG@10 default {default} milvus {milvus}")
    assert abs(milvus["hybrid"] - default["hybrid"]) <= 0.02
    # same terms, another scorer (the server's BM25 statistics; measured: +0.8 points on the theorems, +3.3 on
    # the questions; the cause of the gap was not isolated)
    assert abs(milvus["bm25"] - default["bm25"]) <= 0.05
    assert milvus["dense"] == pytest.approx(default["dense"], abs=0.005)  # exact vs ANN on 354+ documents
