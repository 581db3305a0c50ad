"""Collections: idempotent upsert, delete, get, drop, consistency of BM25 and dense, bad input.

The behaviour tests run on both backends (``backend_kind``): chroma (the default: catalog + BM25 in the
data dir) and milvus (a real ``milvus-lite server`` holds everything); the tests about the data directory's
own files (lock, catalog, BM25 segments, chroma's dirty flag) stay chroma's."""

import json
import secrets
import sqlite3

import pytest
from milvus_support import milvus_store
from tests_support import make_settings

from diver.engine import Engine
from diver.errors import (
    CollectionNotFound,
    CorruptIndex,
    DocumentNotFound,
    EmbedderMismatch,
    IndexLocked,
    InputError,
)
from diver.text.documents import Document, make_document

DOCS = [
    Document(id="pyth", text="Pythagorean theorem\nIn a right triangle a^2 + b^2 = c^2 for the legs and hypotenuse."),
    Document(id="bayes", text="Bayes theorem\nP(A|B) = P(B|A) P(A) / P(B): posterior from prior and likelihood."),
    Document(id="pigeon", text="Pigeonhole principle\nIf n+1 objects go into n boxes, some box holds two objects."),
    Document(id="euler", text="Euler formula\nFor a connected planar graph V - E + F = 2 vertices edges faces."),
]


@pytest.fixture(params=["chroma", "milvus"])
def backend_kind(request):
    return request.param


@pytest.fixture
def settings_of(backend_kind, request, tmp_path):
    """Settings for this test's backend (milvus: a deployment prefix of its own on the session's server)."""
    prefix = "t" + secrets.token_hex(4)

    def make(path=tmp_path, **overrides):
        if backend_kind == "milvus":
            server = request.getfixturevalue("milvus_server")
            overrides["store"] = {**milvus_store(server, prefix), **overrides.get("store", {})}
        return make_settings(path, **overrides)

    return make


@pytest.fixture
def engine(settings_of):
    with Engine(settings_of()) as eng:
        yield eng


def stored_chunks(col) -> int:
    """Chunk vectors the backend holds, visible or not (strays included)."""
    if hasattr(col, "rows"):  # milvus: every row, whatever its generation
        return int(col.rows.client.query(col.rows.rows, filter="", output_fields=["count(*)"])[0]["count(*)"])
    return col.store.count()


def visible_ids(col):
    """Document ids as each index sees them: catalog, BM25 rows, and dense vectors (by chunk key); for milvus,
    the committed rows' documents, and every row's (no strays of replaced or deleted documents)."""
    if hasattr(col, "rows"):
        client, name = col.rows.client, col.rows.rows
        snap = col.rows.snapshot()
        committed = {r["doc_id"] for r in client.query(name, filter=snap.condition, output_fields=["doc_id"])}
        heads = {r["doc_id"] for r in client.query(name, filter=f"({snap.condition}) and idx == 0", output_fields=["doc_id"])}
        every = {r["doc_id"] for r in client.query(name, filter="", output_fields=["doc_id"])}
        return heads, committed, every
    with col.catalog.snapshot() as db:
        catalog = {row[0] for row in db.execute("SELECT id FROM documents")}
        view = col._lexical_view(db)
        keys = col.catalog.resolve(db, col.store.all_keys())
    return catalog, set(view.doc_ids), {doc for doc, _ in keys.values()}


def test_upsert_search_get(engine):
    col = engine.collection("maths", create=True)
    report = col.upsert(DOCS)
    assert (report.added, report.replaced, report.unchanged) == (4, 0, 0)
    for mode in ("bm25", "dense", "hybrid"):
        hits = col.search("planar graph vertices edges faces", k=2, mode=mode).hits
        assert hits[0].id == "euler", mode
        assert hits[0].rank == 1 and hits[0].title == "Euler formula"
        assert "planar" in hits[0].highlight
    hybrid = col.search("planar graph vertices edges faces", k=4).hits
    assert set(hybrid[0].scores) == {"bm25", "dense"}
    assert col.get("bayes").text.startswith("Bayes theorem")
    with pytest.raises(DocumentNotFound):
        col.get("nope")


def test_upsert_is_idempotent_and_replaces(engine):
    col = engine.collection("maths", create=True)
    col.upsert(DOCS)
    again = col.upsert(DOCS)
    assert (again.added, again.replaced, again.unchanged) == (0, 0, 4)
    changed = Document(id="bayes", text="Bayes rule\nA totally different text about conditional probability.")
    report = col.upsert([changed])
    assert (report.added, report.replaced) == (0, 1)
    info = col.info()
    assert (info.documents, info.chunks) == (4, 4)
    assert stored_chunks(col) == 4  # the replaced document's vector is gone, not duplicated
    assert col.search("conditional probability", k=1, mode="bm25").hits[0].id == "bayes"
    assert visible_ids(col) == ({d.id for d in DOCS},) * 3


def test_duplicate_ids_in_one_batch_last_wins(engine):
    col = engine.collection("dups", create=True)
    report = col.upsert([Document(id="a", text="first"), Document(id="b", text="bee"), Document(id="a", text="second")])
    assert report.duplicate_ids == ["a"]
    assert col.get("a").text == "second"
    assert col.info().documents == 2


def test_delete_keeps_indexes_consistent(engine):
    col = engine.collection("maths", create=True)
    col.upsert(DOCS)
    assert col.delete(["pigeon", "missing"]) == 1
    catalog, bm25, dense = visible_ids(col)
    assert catalog == bm25 == dense == {"pyth", "bayes", "euler"}
    assert all(h.id != "pigeon" for h in col.search("objects boxes pigeonhole", k=10).hits)


def test_long_documents_are_chunked_and_rolled_up_by_max(settings_of):
    settings = settings_of(chunking={"max_tokens": 20, "overlap": 0.2})
    with Engine(settings) as eng:
        col = eng.collection("long", create=True)
        filler = " ".join(f"filler{i}" for i in range(200))
        col.upsert([Document(id="long", text=f"{filler} zebra giraffe savannah"), *DOCS])
        assert col.info().chunks > 10
        hit = col.search("zebra giraffe", k=1, mode="bm25").hits[0]
        assert hit.id == "long" and "zebra" in hit.highlight and "filler0 " not in hit.highlight
        # one document, one hit, however many of its chunks match
        assert [h.id for h in col.search("filler1 filler150", k=5, mode="bm25").hits].count("long") == 1
        assert col.get("long").text == f"{filler} zebra giraffe savannah"  # rebuilt exactly from its chunks
        [(index, start, end, text)] = col.chunk_window("long", col.chunk_count("long") - 1, window=0)
        assert text.endswith("savannah") and col.get("long").text[start:end] == text


def test_search_excludes_before_cutoff(engine):
    col = engine.collection("maths", create=True)
    col.upsert(DOCS)
    query = "planar graph vertices edges faces triangle posterior boxes"  # a term in every document
    for mode in ("bm25", "dense", "hybrid"):
        [full] = col.search_many([query], k=2, mode=mode)
        assert "euler" in [h.id for h in full.hits]  # the excluded document would be in the top 2
        [result] = col.search_many([query], k=2, mode=mode, exclude=[{"euler"}])
        assert "euler" not in [h.id for h in result.hits]
        assert len(result.hits) == 2


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_refused(engine, query):
    col = engine.collection("maths", create=True)
    with pytest.raises(InputError, match="empty"):
        col.search(query)


@pytest.mark.parametrize("k", [0, -1, True, 2.5])
def test_bad_k_refused(engine, k):
    col = engine.collection("maths", create=True)
    with pytest.raises(InputError, match="k must be"):
        col.search("x", k=k)


def test_huge_k_is_capped_and_said(engine):
    col = engine.collection("maths", create=True)
    col.upsert(DOCS)
    result = col.search("theorem", k=10**9)
    assert result.k == 1000 and any("capped" in n for n in result.notes)
    assert len(result.hits) == 4


def test_too_long_query_and_bad_mode(engine):
    col = engine.collection("maths", create=True)
    with pytest.raises(InputError, match="limit"):
        col.search("x" * 30000)
    with pytest.raises(InputError, match="mode"):
        col.search("x", mode="sparse")


def test_unknown_collection_lists_available(engine):
    engine.collection("maths", create=True)
    with pytest.raises(CollectionNotFound, match="maths"):
        engine.collection("physics")


@pytest.mark.parametrize("name", ["a", "../etc", "a/b", "x" * 64, "ünï", "-lead", "trail-", "sp ace", "", None, 3])
def test_bad_collection_names(engine, name):
    with pytest.raises(InputError, match="collection name"):
        engine.collection(name, create=True)
    assert not any((engine.data_dir / "collections").iterdir())


def test_list_and_drop(engine):
    engine.collection("one", create=True).upsert(DOCS[:2])
    engine.collection("two", create=True)
    infos = {i.name: i for i in engine.list_collections()}
    assert infos["one"].documents == 2 and infos["two"].documents == 0
    assert infos["one"].embedder == "hashing-384" and infos["one"].dimensions == 384
    engine.drop("one")
    assert [i.name for i in engine.list_collections()] == ["two"]
    with pytest.raises(CollectionNotFound):
        engine.drop("one")
    assert engine.collection("one", create=True).info().documents == 0  # recreated empty: no stale vectors


def test_embedder_mismatch_refused(settings_of):
    with Engine(settings_of()) as eng:
        eng.collection("maths", create=True).upsert(DOCS)
    other = settings_of(embedding={"provider": "hashing", "dimensions": 128})
    with Engine(other) as eng:
        col = eng.collection("maths")
        with pytest.raises(EmbedderMismatch, match="384"):
            col.upsert([Document(id="x", text="new")])
        with pytest.raises(EmbedderMismatch):
            col.search("x", mode="dense")
        assert col.search("theorem", mode="bm25").hits  # BM25 needs no embedder
        assert col.info().documents == 4


def test_reopen_persists(settings_of):
    settings = settings_of()
    with Engine(settings) as eng:
        eng.collection("maths", create=True).upsert(DOCS)
        before = [h.id for h in eng.collection("maths").search("triangle hypotenuse").hits]
    with Engine(settings) as eng:
        col = eng.collection("maths")
        assert [h.id for h in col.search("triangle hypotenuse").hits] == before
        assert col.info().documents == 4


def test_second_process_is_refused_with_a_lock(tmp_path):
    settings = make_settings(tmp_path)
    with Engine(settings):
        with pytest.raises(IndexLocked, match="in use"):
            Engine(settings)
    Engine(settings).close()  # released on close


def test_corrupt_meta_detected(tmp_path):
    settings = make_settings(tmp_path)
    with Engine(settings) as eng:
        eng.collection("maths", create=True).upsert(DOCS)
    meta = settings.data_dir / "collections" / "maths" / "meta.json"
    meta.write_text("{half")
    with Engine(settings) as eng, pytest.raises(CorruptIndex, match="diver drop maths"):
        eng.collection("maths")
    meta.unlink()
    with Engine(settings) as eng:
        with pytest.raises(CorruptIndex, match="half-created"):
            eng.collection("maths")
        eng.drop("maths")  # the way out works
        assert eng.collection_names() == []


def test_corrupt_catalog_detected(tmp_path):
    settings = make_settings(tmp_path)
    with Engine(settings) as eng:
        eng.collection("maths", create=True).upsert(DOCS)
    catalog = settings.data_dir / "collections" / "maths" / "catalog.sqlite"
    for suffix in ("-wal", "-shm"):
        catalog.with_name(catalog.name + suffix).unlink(missing_ok=True)
    catalog.write_bytes(b"this is not a database" * 100)
    with Engine(settings) as eng, pytest.raises(CorruptIndex, match="catalog"):
        eng.collection("maths")


def test_corrupt_bm25_files_are_rebuilt(tmp_path):
    settings = make_settings(tmp_path)
    with Engine(settings) as eng:
        col = eng.collection("maths", create=True)
        col.upsert(DOCS)
        col.warm()
    [segment] = list((settings.data_dir / "collections" / "maths" / "bm25").glob("seg-*"))
    (segment / "params.json").write_text("garbage")
    with Engine(settings) as eng:
        assert eng.collection("maths").search("hypotenuse", mode="bm25").hits[0].id == "pyth"


def test_metadata_roundtrip_and_crash_strays_reconciled(engine, backend_kind):
    if backend_kind == "milvus":
        pytest.skip("the catalog's pending log is chroma's; milvus: test_milvus_collection.py")
    col = engine.collection("maths", create=True)
    col.upsert([make_document("m", "with metadata", {"source": "unit", "n": [1, 2]})])
    assert col.get("m").metadata == {"source": "unit", "n": [1, 2]}
    # Simulate a batch that wrote vectors but crashed before its catalog commit.
    col.catalog.log_pending(["deadbeef-0"])
    col.store.upsert(["deadbeef-0"], col.engine.embedder.embed_documents(["stray"]))
    assert col.store.count() == 2
    col.upsert([Document(id="n", text="next batch")])
    assert col.store.count() == 2 and "deadbeef-0" not in col.store.all_keys()
    assert json.loads(json.dumps(col.info().model_dump()))["documents"] == 2
    assert sqlite3.connect(col.catalog.path).execute("SELECT COUNT(*) FROM pending").fetchone()[0] == 0


def test_interrupted_write_rebuilds_the_dense_index_on_open(tmp_path):

    settings = make_settings(tmp_path)
    with Engine(settings) as eng:
        col = eng.collection("maths", create=True)
        col.upsert(DOCS)
        col.catalog.set_meta("dirty", "1")  # as if killed mid-write
        before = [h.id for h in col.search("planar graph", k=4, mode="dense").hits]
    with Engine(settings) as eng:
        col = eng.collection("maths")
        assert col.meta["store_name"].startswith(f"{eng.store_id}.maths.v") and col.catalog.get_meta("dirty") == "0"
        assert [h.id for h in col.search("planar graph", k=4, mode="dense").hits] == before
        assert col.store.count() == 4 and visible_ids(col) == ({d.id for d in DOCS},) * 3
        assert eng.backend.names() == [col.meta["store_name"]]
        eng.drop("maths")
        assert eng.backend.names() == []
