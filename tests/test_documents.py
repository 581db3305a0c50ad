import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diver.errors import InputError
from diver.text.documents import (
    ChunkScore,
    Document,
    RegexSpanner,
    chunk_document,
    clean_text,
    dedupe_last_wins,
    make_document,
    rollup_max,
)


def test_clean_text_collapses_and_normalises():
    raw = "Ｔｈｅｏｒｅｍ\x00\x07  A\t\tB \r\n\r\n\n\n\nnext   line  \n"
    assert clean_text(raw) == "Theorem A B\n\nnext line"


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t", "\x00\x01"])
def test_empty_document_refused(text):
    with pytest.raises(InputError, match="empty"):
        make_document("d1", text)


def test_bad_ids_and_metadata_refused():
    with pytest.raises(InputError):
        make_document("", "text")
    with pytest.raises(InputError):
        make_document("a\x00b", "text")
    with pytest.raises(InputError, match="JSON"):
        make_document("d", "text", {"x": object()})
    with pytest.raises(InputError, match="bytes"):
        make_document("d", "x" * 100, max_bytes=10)


def test_dedupe_last_wins():
    docs = [Document(id="a", text="1"), Document(id="b", text="2"), Document(id="a", text="3")]
    kept, dups = dedupe_last_wins(docs)
    assert [(d.id, d.text) for d in kept] == [("a", "3"), ("b", "2")]
    assert dups == ["a"]


def test_chunking_windows_overlap():
    doc = Document(id="d", text=" ".join(f"w{i}" for i in range(100)))
    chunks = chunk_document(doc, RegexSpanner(), max_tokens=30, overlap=0.2)
    # step = 30 - 6 = 24: windows start at 0, 24, 48, 72
    assert [c.text.split()[0] for c in chunks] == ["w0", "w24", "w48", "w72"]
    assert all(len(c.text.split()) <= 30 for c in chunks)
    assert chunks[-1].text.split()[-1] == "w99"
    assert chunks[0].text.split()[-6:] == chunks[1].text.split()[:6]


def test_short_document_is_one_chunk():
    doc = Document(id="d", text="short text")
    assert [c.text for c in chunk_document(doc, RegexSpanner(), 256, 0.2)] == ["short text"]


def test_chunking_with_real_tokenizer(minilm):
    doc = Document(id="d", text="Pythagoras theorem. " * 300)
    chunks = chunk_document(doc, minilm.spanner, 254, 0.2)
    assert len(chunks) > 3
    for chunk in chunks:
        assert len(minilm.spanner.token_spans(chunk.text)) <= 254


def test_rollup_max():
    scores = [
        ChunkScore("a", 0, 0.2),
        ChunkScore("a", 1, 0.9),
        ChunkScore("b", 0, 0.5),
        ChunkScore("a", 2, 0.1),
    ]
    docs = rollup_max(scores)
    assert [(d.doc_id, d.score, d.best_chunk) for d in docs] == [("a", 0.9, 1), ("b", 0.5, 0)]


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1, max_size=600), max_tokens=st.integers(1, 40), overlap=st.floats(0, 0.85))
def test_chunker_fuzz_covers_every_token(text, max_tokens, overlap):
    cleaned = clean_text(text)
    if not cleaned:
        return
    doc = Document(id="d", text=cleaned)
    spanner = RegexSpanner()
    chunks = chunk_document(doc, spanner, max_tokens, overlap)
    assert chunks
    covered = set()
    for chunk in chunks:
        assert len(spanner.token_spans(chunk.text)) <= max(max_tokens, 1) or len(chunks) == 1
        covered.update(range(chunk.start, chunk.end))
    for start, end in spanner.token_spans(cleaned):
        assert start in covered and end - 1 in covered
