"""Hypothesis fuzzing: MCP tool argument models, the chunker, and every LLM-output parser."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from diver.stages.expansion import strip_reasoning
from diver.stages.rerank.parsers import parse_ranking, parse_relevance_score
from diver.text.documents import Document, RegexSpanner, chunk_document

pytest.importorskip("mcp")
from diver.server.models import DocumentInput  # noqa: E402

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=10,
)
replies = st.one_of(
    st.text(max_size=400),
    st.lists(st.one_of(st.integers(-5, 60), st.text(max_size=3)), max_size=30).map(str),
    st.lists(st.integers(-5, 60), max_size=30).map(lambda xs: "```json\n" + str(xs) + "\n```"),
    st.lists(st.integers(-5, 60), max_size=30).map(lambda xs: " > ".join(f"[{x}]" for x in xs)),
    st.tuples(st.text(max_size=50), st.text(max_size=50)).map(lambda t: f"<think>{t[0]}</think>{t[1]}"),
)


@FAST
@given(reply=replies, count=st.integers(0, 40))
def test_ranking_parser_only_returns_existing_unique_candidates(reply: str, count: int) -> None:
    parsed = parse_ranking(reply, count)
    assert all(isinstance(i, int) and 1 <= i <= count for i in parsed.order)
    assert len(set(parsed.order)) == len(parsed.order)


@FAST
@given(reply=replies)
def test_score_parser_returns_none_or_0_to_10(reply: str) -> None:
    score = parse_relevance_score(reply)
    assert score is None or 0.0 <= score <= 10.0


@FAST
@given(text=st.text(max_size=300))
def test_think_stripping_never_keeps_reasoning(text: str) -> None:
    out = strip_reasoning(text)
    assert isinstance(out, str) and "</think>" not in out.lower().replace(" ", "")


@FAST
@given(doc_id=st.text(max_size=30), text=st.text(max_size=30), metadata=json_values)
def test_document_input_model_validates_or_refuses_cleanly(doc_id, text, metadata) -> None:
    """Accepted exactly when metadata is an object; accepted input round-trips unchanged, refusals name
    the field."""
    try:
        parsed = DocumentInput.model_validate({"id": doc_id, "text": text, "metadata": metadata})
    except ValidationError as exc:
        assert not isinstance(metadata, dict)
        assert exc.errors()[0]["loc"][0] == "metadata"
        return
    assert isinstance(metadata, dict)
    assert (parsed.id, parsed.text, parsed.metadata) == (doc_id, text, metadata)


@FAST
@given(text=st.text(min_size=1, max_size=3000), budget=st.integers(16, 300), overlap=st.floats(0, 0.85))
def test_chunker_covers_the_text_in_order(text: str, budget: int, overlap: float) -> None:
    if not text.strip():
        return
    doc = Document(id="d", text=text)
    spanner = RegexSpanner()
    chunks = chunk_document(doc, spanner, budget, overlap)
    assert chunks and [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert 0 <= c.start <= c.end <= len(text) and c.text == text[c.start : c.end]
        assert len(spanner.token_spans(c.text)) <= budget or len(chunks) == 1
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)
    # coverage: every token of the text lies inside at least one chunk
    tokens = spanner.token_spans(text)
    for start, end in tokens:
        assert any(c.start <= start and end <= c.end for c in chunks), (start, end)
    if tokens:
        assert chunks[0].start <= tokens[0][0] and chunks[-1].end >= tokens[-1][1]
