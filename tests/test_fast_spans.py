"""Chunking with the Rust tokenizer's batch API gives the spans and chunks of the per-document tokenizer call."""

from __future__ import annotations

import random

from diver.index.dense.embedders import _HFSpanner
from diver.index.dense.fast_tokenize import RustSpanner
from diver.text.documents import Document, chunk_document


def _texts() -> list[str]:
    rng = random.Random(7)
    words = ["theorem", "Ünïcödé", "数学の定理", "∑x²", "café", "naïve", "0x1F", "3.14159", "e-mail", "don't",
             "\t", "\n\n", "  ", "🙂", "straße", "İstanbul", "a" * 40]  # fmt: skip
    texts = ["", " ", "one", "prime prime-number primes"]
    texts += [" ".join(rng.choice(words) for _ in range(rng.randint(1, 900))) for _ in range(30)]
    return texts


def test_rust_spans_equal_the_tokenizer_call(minilm):
    tokenizer = minilm.model.tokenizer
    slow, fast = _HFSpanner(tokenizer), RustSpanner(tokenizer)
    texts = _texts()
    many = fast.token_spans_many(texts)
    for text, batch_spans in zip(texts, many, strict=True):
        assert fast.token_spans(text) == slow.token_spans(text) == batch_spans


def test_chunks_from_batch_spans_equal_per_document_chunks(minilm):
    tokenizer = minilm.model.tokenizer
    slow, fast = _HFSpanner(tokenizer), RustSpanner(tokenizer)
    docs = [Document(id=f"d{i}", text=t) for i, t in enumerate(_texts()) if t.strip()]
    spans = fast.token_spans_many([d.text for d in docs])
    for doc, doc_spans in zip(docs, spans, strict=True):
        assert chunk_document(doc, fast, 64, 0.2, doc_spans) == chunk_document(doc, slow, 64, 0.2)
