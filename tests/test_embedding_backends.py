"""CPU embedding backends (embedding.backend): the ONNX export against torch, auto's choice and fallbacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from diver.config import EmbeddingSettings
from diver.errors import ConfigError
from diver.index.dense import backends
from diver.index.dense.embedders import SentenceTransformerEmbedder

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

REPO = Path(__file__).resolve().parents[1]
LONG = "The dominated convergence theorem lets limits pass under the integral sign. " * 40  # > 256 tokens
TEXTS = [
    "prime",
    "Ünïcödé — 数学の定理, ∑ x² over ℝ; café naïve",
    "def gcd(a, b):\n    while b: a, b = b, a % b\n    return a",
    LONG,
    "Pythagorean theorem: a^2 + b^2 = c^2 for the sides of a right triangle.",
    "prime numbers",  # shares a prefix with the first text
    LONG[: len(LONG) // 3],
]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1))


@pytest.mark.parametrize(
    ("backend", "precision", "tolerance"),
    [("onnx", "auto", 1e-4), ("openvino", "f32", 1e-4), ("openvino", "bf16", 1e-3)],
)
def test_export_matches_torch(minilm, tmp_path, backend, precision, tolerance):
    settings = EmbeddingSettings(backend=backend, backend_precision=precision, cache=False, batch_size=3)
    fast = SentenceTransformerEmbedder(settings, cache_dir=tmp_path)
    assert fast.backend_choice.picked == backend
    reference = minilm.embed_documents(TEXTS)
    vectors = fast.embed_documents(TEXTS)  # uneven lengths over 3 batches: rows must keep their order
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(vectors, reference).min() >= 1 - tolerance
    one = fast.embed_queries([TEXTS[4]])  # a single query: no padding, same vector as in a batch
    assert float(one[0] @ vectors[4]) >= 1 - 1e-5
    exports = list((tmp_path / "embed-exports").glob("*/model.onnx"))
    assert len(exports) == 1


def test_export_is_cached_and_keyed_by_settings(tmp_path):
    first = SentenceTransformerEmbedder(EmbeddingSettings(backend="onnx", cache=False), cache_dir=tmp_path)
    path = next((tmp_path / "embed-exports").glob("*/model.onnx"))
    stamp = path.stat().st_mtime_ns
    SentenceTransformerEmbedder(EmbeddingSettings(backend="onnx", cache=False), cache_dir=tmp_path)
    assert path.stat().st_mtime_ns == stamp  # loaded, not exported again
    shorter = SentenceTransformerEmbedder(
        EmbeddingSettings(backend="onnx", cache=False, max_seq_length=128), cache_dir=tmp_path
    )
    assert len(list((tmp_path / "embed-exports").glob("*/model.onnx"))) == 2  # another key
    assert shorter.max_seq_length == 128 and first.max_seq_length == 256


def test_int8_is_a_setting_with_its_cost(minilm, tmp_path):
    settings = EmbeddingSettings(backend="onnx", quantize="int8-dynamic", cache=False)
    int8 = SentenceTransformerEmbedder(settings, cache_dir=tmp_path)
    assert int8.backend_choice.precision == "int8-dynamic"
    cosines = _cosines(int8.embed_documents(TEXTS), minilm.embed_documents(TEXTS))
    assert 0.8 < cosines.min() < 0.9999  # close, but measurably not fp32 (0.87 measured on the unicode text)
    with pytest.raises(ConfigError, match="onnx"):
        SentenceTransformerEmbedder(
            EmbeddingSettings(backend="openvino", quantize="int8-dynamic", cache=False), cache_dir=tmp_path
        )


class _Lookup:
    """A fake runner: instant, returning stored vectors for known inputs (+ noise when told to disagree)."""

    name = "fake"

    def __init__(self, table: dict[bytes, np.ndarray], noise: float) -> None:
        self.table = table
        self.noise = noise

    def __call__(self, features):
        rows = []
        for ids, mask in zip(features["input_ids"], features["attention_mask"], strict=True):
            vector = self.table[ids[mask == 1].tobytes()].copy()
            if self.noise:
                vector += self.noise * np.random.default_rng(len(rows)).standard_normal(vector.shape)
            rows.append(vector)
        return np.stack(rows).astype(np.float32)


def _table(minilm) -> dict[bytes, np.ndarray]:
    from diver.index.dense.fast_tokenize import numpy_batch_tokenizer

    tokenizer = numpy_batch_tokenizer(minilm.model, minilm.max_seq_length)
    texts = backends.verification_texts() + backends.speed_texts()
    vectors = minilm.encode_torch(texts)
    return {np.asarray(e.ids, dtype=np.int64).tobytes(): v for e, v in zip(tokenizer.encode(texts), vectors, strict=True)}


@pytest.mark.parametrize(("noise", "picked"), [(0.0, "openvino"), (0.2, "torch")])
def test_auto_keeps_a_backend_only_when_it_agrees_with_torch(minilm, tmp_path, monkeypatch, noise, picked):
    table = _table(minilm)
    monkeypatch.setitem(backends.RUNNERS, "openvino", lambda path, threads, settings: _Lookup(table, noise))
    monkeypatch.setitem(backends.RUNNERS, "onnx", lambda path, threads, settings: _Lookup(table, 0.2))
    embedder = SentenceTransformerEmbedder(EmbeddingSettings(cache=False), cache_dir=tmp_path)
    choice = embedder.backend_choice
    assert choice.requested == "auto" and choice.picked == picked
    if noise:
        assert "disagrees" in str(choice.trials["openvino"]["error"])
        assert embedder._fast is None  # the torch path embeds
    else:
        assert float(choice.trials["openvino"]["min_cosine"]) >= 0.999
    record = json.loads(next((tmp_path / "embed-exports").glob("*/choice.json")).read_text())
    assert record["picked"] == picked and record["context"]["cpu"] == backends.cpu_name()


_MISSING = textwrap.dedent(
    """
    import json, sys
    for name in {blocked!r}:
        sys.modules[name] = None  # "not installed": importing it raises ImportError
    from pathlib import Path
    from diver.config import EmbeddingSettings
    from diver.index.dense.embedders import SentenceTransformerEmbedder
    e = SentenceTransformerEmbedder(EmbeddingSettings(cache=False), cache_dir=Path(sys.argv[1]))
    v = e.embed_queries(["prime numbers"])
    print(json.dumps({{"picked": e.backend_choice.picked, "reason": e.backend_choice.reason,
                      "trials": e.backend_choice.trials, "norm": float((v * v).sum())}}))
    """
)


@pytest.mark.parametrize(
    ("blocked", "allowed"), [(["openvino", "onnxruntime"], {"torch"}), (["openvino"], {"onnx", "torch"})]
)
def test_auto_falls_back_when_a_backend_is_missing(tmp_path, blocked, allowed):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}
    out = subprocess.run(
        [sys.executable, "-c", _MISSING.format(blocked=blocked), str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["picked"] in allowed and abs(result["norm"] - 1.0) < 1e-4
    assert result["trials"]["openvino"] == {"error": "not installed"}
    if len(blocked) == 2:
        assert "cpu-fast" in result["reason"]


def test_explicit_backend_that_is_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda name: False)
    with pytest.raises(ConfigError, match="cpu-fast"):
        SentenceTransformerEmbedder(EmbeddingSettings(backend="openvino", cache=False), cache_dir=tmp_path)


def test_collections_report_the_backend(tmp_path):
    from diver.config import load_settings
    from diver.engine import Engine
    from diver.text.documents import Document

    settings = load_settings(data_dir=tmp_path / "data", embedding={"backend": "onnx"})
    with Engine(settings) as engine:
        engine.collection("notes", create=True).upsert([Document(id="a", text="prime numbers")])
        assert engine.list_collections()[0].embedding_backend == "onnx float32"
    settings = load_settings(data_dir=tmp_path / "data")  # auto, nothing recorded yet: says so
    with Engine(settings) as engine:
        assert "auto" in engine.list_collections()[0].embedding_backend
