"""The `diver` CLI as a user runs it: index + search --json with the offline MiniLM; kill -9 and resume."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data"
DIVER = [sys.executable, "-m", "diver.cli"]


def run(args, env, **kw):
    return subprocess.run(DIVER + args, env=env, capture_output=True, text=True, timeout=300, **kw)  # noqa: S603


def base_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}
    env.update({"DIVER_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}, **extra)
    return env


@pytest.fixture
def theorems_jsonl(tmp_path):
    theorems = json.loads((DATA / "theoremqa" / "all_theorems.json").read_text(encoding="utf-8"))
    path = tmp_path / "theorems.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for name, text in list(theorems.items())[:40]:
            handle.write(json.dumps({"id": name, "text": f"{name}\n{text}"}) + "\n")
        handle.write("{broken json\n")
    return path


@pytest.mark.integration
def test_index_and_search_json_with_minilm(tmp_path, theorems_jsonl):
    env = base_env(tmp_path)
    out = run(["index", "theorems", str(theorems_jsonl), "--json"], env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["added"] == 40 and any("line 41" in s for s in report["skipped"])
    out = run(["search", "theorems", "probability of an event given evidence, update prior", "-k", "5", "--json"], env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [h["rank"] for h in result["hits"]] == [1, 2, 3, 4, 5]
    assert all(isinstance(h["score"], float) for h in result["hits"])
    scores = [h["score"] for h in result["hits"]]
    assert scores == sorted(scores, reverse=True)
    out = run(["collections", "--json"], env)
    [info] = json.loads(out.stdout)
    assert info["name"] == "theorems" and info["documents"] == 40 and info["dimensions"] == 384
    # the embedding runtime auto picked when `diver index` loaded the model, read back without loading it
    assert info["embedding_backend"].split()[0] in {"torch", "onnx", "openvino"}
    assert "auto" in info["embedding_backend"]
    table = run(["search", "theorems", "minimum sampling rate to reconstruct a band-limited signal"], env)
    assert table.returncode == 0 and "Nyquist" in table.stdout


@pytest.mark.integration
def test_cli_errors_are_clear(tmp_path, theorems_jsonl):
    env = base_env(tmp_path, DIVER_EMBEDDING__PROVIDER="hashing")
    run(["index", "theorems", str(theorems_jsonl)], env)
    for args, message in [
        (["search", "nope", "x"], "unknown collection 'nope'"),
        (["search", "theorems", "   "], "query is empty"),
        (["search", "theorems", "x", "-k", "0"], "k must be a positive integer"),
        (["search", "../etc", "x"], "invalid collection name"),
        (["index", "theorems", str(tmp_path / "missing")], "missing"),
    ]:
        out = run(args, env)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr


@pytest.mark.integration
def test_kill_and_resume_indexing(tmp_path):
    path = tmp_path / "many.jsonl"
    with path.open("w") as handle:
        for i in range(6000):
            handle.write(json.dumps({"id": f"d{i}", "text": f"document {i} about topic {i % 97} and {i % 13}"}) + "\n")
    env = base_env(tmp_path, DIVER_EMBEDDING__PROVIDER="hashing", DIVER_STORE__WRITE_BATCH_SIZE="100")
    catalog = tmp_path / "data" / "collections" / "many" / "catalog.sqlite"
    proc = subprocess.Popen(DIVER + ["index", "many", str(path)], env=env, stderr=subprocess.DEVNULL)  # noqa: S603
    committed = 0
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if catalog.exists():
            try:
                committed = sqlite3.connect(catalog).execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            except sqlite3.Error:
                committed = 0
            if committed >= 300:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < committed < 6000, "the kill did not land mid-way"
    out = run(["index", "many", str(path), "--json"], env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["unchanged"] >= committed and report["added"] + report["unchanged"] == 6000
    from diver.config import load_settings
    from diver.engine import Engine

    with Engine(load_settings(data_dir=tmp_path / "data", embedding={"provider": "hashing"})) as engine:
        col = engine.collection("many")
        info = col.info()
        assert (info.documents, info.chunks) == (6000, 6000)
        assert sorted(col.store.all_keys()) == sorted(col.catalog.all_keys())
        assert col.search("topic 42", k=3, mode="bm25").hits
