"""BM25: parity with the BRIGHT reference (gensim LuceneBM25Model) and with bm25s, persistence."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from diver.config import BM25Settings
from diver.index.lexical.bm25 import BM25Tokenizer, LexicalIndex

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def corpus_and_queries():
    theorems = json.loads((DATA / "theoremqa" / "all_theorems.json").read_text(encoding="utf-8"))
    texts = [f"{name}\n{text}" for name, text in theorems.items()]
    path = DATA / "bright" / "topics" / "topics.bright-theoremqa-theorems-original.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        queries = [json.loads(line)["query"] for line in handle]
    return texts, queries


def test_query_side_equals_gensim_lucene_bm25(corpus_and_queries):
    gensim = pytest.importorskip(
        "gensim", reason="gensim is a dev dependency: pip install 'diver-retrieval[dev]'"
    )
    from gensim.corpora import Dictionary
    from gensim.models import LuceneBM25Model
    from gensim.similarities import SparseMatrixSimilarity

    assert gensim
    texts, queries = corpus_and_queries
    settings = BM25Settings(query_side=True)
    ours = LexicalIndex.build(texts, settings)
    tokenizer = BM25Tokenizer(settings)
    tokens = tokenizer.tokenize(texts)
    dictionary = Dictionary(tokens)
    model = LuceneBM25Model(dictionary=dictionary, k1=0.9, b=0.4)
    index = SparseMatrixSimilarity(
        model[[dictionary.doc2bow(t) for t in tokens]],
        num_docs=len(tokens),
        num_terms=len(dictionary),
        normalize_queries=False,
        normalize_documents=False,
    )
    worst = 0.0
    for query in queries:
        reference = index[model[dictionary.doc2bow(tokenizer.tokenize([query])[0])]]
        mine = ours.score(query)
        worst = max(worst, float(np.abs(reference - mine).max()))
        assert np.argmax(reference) == np.argmax(mine)
    assert worst < 1e-4, worst


def test_classic_equals_bm25s_lucene(corpus_and_queries):
    import bm25s
    import Stemmer

    texts, queries = corpus_and_queries
    ours = LexicalIndex.build(texts, BM25Settings())
    stemmer = Stemmer.Stemmer("english")
    reference = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    reference.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    for query in queries[:30]:
        q = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)[0]
        np.testing.assert_allclose(reference.get_scores(q), ours.score(query), atol=1e-4)


def test_query_side_saturates_repeated_query_terms():
    texts = ["apple banana", "apple apple cherry", "durian"]
    classic = LexicalIndex.build(texts, BM25Settings())
    side = LexicalIndex.build(texts, BM25Settings(query_side=True))
    # Classic: a repeated query term counts linearly; query-side: sub-linearly.
    c1, c3 = classic.score("apple")[0], classic.score("apple apple apple")[0]
    s1, s3 = side.score("apple")[0], side.score("apple apple apple")[0]
    assert c3 == pytest.approx(3 * c1)
    assert s1 < s3 < 3 * s1


def test_stemming_and_stopwords():
    index = LexicalIndex.build(["The runners were running quickly", "A cat sat"], BM25Settings())
    scores = index.score("run")
    assert scores[0] > 0 and scores[1] == 0
    assert not index.score("the a and").any()  # stopwords only: nothing matches


def test_empty_and_unknown(tmp_path):
    index = LexicalIndex.build([], BM25Settings())
    assert index.score("anything").shape == (0,)
    index = LexicalIndex.build(["alpha beta"], BM25Settings())
    assert index.score("zzz").tolist() == [0.0]


@pytest.mark.parametrize("query_side", [False, True])
def test_save_load_roundtrip(tmp_path, query_side):
    settings = BM25Settings(query_side=query_side)
    index = LexicalIndex.build(["alpha beta gamma", "beta beta delta", "epsilon"], settings)
    index.save(tmp_path / "bm25")
    loaded = LexicalIndex.load(tmp_path / "bm25", settings)
    np.testing.assert_allclose(index.score("beta delta"), loaded.score("beta delta"))


def test_load_refuses_other_settings_and_garbage(tmp_path):
    from diver.errors import CorruptIndex

    LexicalIndex.build(["alpha"], BM25Settings()).save(tmp_path / "bm25")
    with pytest.raises(CorruptIndex, match="other settings"):
        LexicalIndex.load(tmp_path / "bm25", BM25Settings(k1=1.2))
    (tmp_path / "bm25" / "params.json").write_text("{not json")
    with pytest.raises(CorruptIndex):
        LexicalIndex.load(tmp_path / "bm25", BM25Settings())


def test_streaming_build_equals_one_shot(corpus_and_queries):
    texts, queries = corpus_and_queries
    one = LexicalIndex.build(texts, BM25Settings())
    streamed = LexicalIndex.build_streaming(
        [texts[i : i + 50] for i in range(0, len(texts), 50)], BM25Settings()
    )
    for query in queries[:10]:
        np.testing.assert_allclose(one.score(query), streamed.score(query), atol=1e-6)
