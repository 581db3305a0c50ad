"""The Milvus backend's own behaviour, on a real `milvus-lite server` (127.0.0.1): filters translated to Milvus
expressions (same documents as the catalog's SQL on chroma, a clear error for what cannot be translated),
deployment prefixes, the schema version check, whole-batch visibility and crash strays, documents rebuilt
exactly from their chunk rows."""

from __future__ import annotations

import json
import secrets

import numpy as np
import pytest
from milvus_support import milvus_store
from tests_support import make_settings

from diver.engine import Engine
from diver.errors import CollectionNotFound, CorruptIndex, InputError
from diver.index.stores.documents import RowDocument
from diver.index.stores.milvus_expr import milvus_filter
from diver.text.documents import Document, chunk_document, content_hash

pytest.importorskip("pymilvus")

DOCS = [
    Document(id="a1", text="graph colouring of planar maps", metadata={"year": 2001, "kind": "paper", "source": "/lib/a/1.md"}),
    Document(id="a10", text="graph minors and colouring", metadata={"year": 2010, "kind": "book", "source": "/lib/a/10.md"}),
    Document(id="b2", text="prime sieves and colouring", metadata={"year": 1999, "kind": "paper", "path": "/lib/b/2.md"}),
    Document(id="b3", text="colouring without metadata kind", metadata={"year": 2005, "flag": True}),
    Document(id="ü-4", text="ünïcode colouring of graphs ✓", metadata={"kind": "note", "url": "https://x.org/ü"}),
    Document(id="c5", text="colouring heuristics", metadata={}),
]  # fmt: skip
FILTERS = [
    {"kind": "paper"},
    {"kind": {"$ne": "paper"}},
    {"year": {"$gt": 2000}},
    {"year": {"$lte": 2001}},
    {"kind": {"$in": ["book", "note"]}},
    {"kind": {"$nin": ["paper"]}},
    {"$or": [{"kind": "book"}, {"year": {"$lt": 2000}}]},
    {"$and": [{"kind": "paper"}, {"year": {"$gte": 2000}}]},
    {"kind": "paper", "year": 1999},
    {"flag": True},
]


@pytest.fixture
def prefix() -> str:
    return "t" + secrets.token_hex(4)


def milvus_settings(tmp_path, server, prefix, **overrides):
    return make_settings(tmp_path, store=milvus_store(server, prefix), **overrides)


@pytest.mark.parametrize("where", FILTERS, ids=lambda w: json.dumps(w, ensure_ascii=False))
def test_filters_select_the_same_documents_as_the_catalog(tmp_path, milvus_server, prefix, where):
    found = {}
    for kind in ("chroma", "milvus"):
        settings = (milvus_settings(tmp_path / kind, milvus_server, prefix) if kind == "milvus"
                    else make_settings(tmp_path / kind))  # fmt: skip
        with Engine(settings) as engine:
            col = engine.collection("lib", create=True)
            col.upsert(DOCS)
            found[kind] = {mode: {h.id for h in col.search("colouring", k=10, mode=mode, where=where).hits}
                           for mode in ("bm25", "dense", "hybrid")}  # fmt: skip
    assert found["milvus"] == found["chroma"]
    assert found["milvus"]["bm25"]  # every filter here matches something


def test_source_prefixes_and_what_cannot_be_translated(tmp_path, milvus_server, prefix):
    with Engine(milvus_settings(tmp_path, milvus_server, prefix)) as engine:
        col = engine.collection("lib", create=True)
        col.upsert(DOCS)
        assert {h.id for h in col.search("colouring", k=10, source="/lib/a/1").hits} == {"a1", "a10"}
        assert {h.id for h in col.search("colouring", k=10, source="/lib/b").hits} == {"b2"}  # from 'path'
        assert {h.id for h in col.search("colouring", k=10, source="https://x.org/ü").hits} == {"ü-4"}
        for bad, message in [({"source": "/lib/a_"}, "cannot be translated"), ({"source": "100%"}, "LIKE"),
                             ({"where": {'we"ird': 1}}, "cannot be translated"),
                             ({"where": {"year": float("nan")}}, "cannot be translated"),
                             ({"where": {"kind": "line\nbreak"}}, "control characters"),
                             ({"where": {"kind": {"$regex": "p.*"}}}, "unknown operator")]:  # fmt: skip
            with pytest.raises(InputError, match=message):
                col.search("colouring", **bad)


def test_filter_expressions_are_exact():
    assert milvus_filter({"kind": {"$ne": "paper"}}, None) == (
        '(not exists metadata["kind"] or metadata["kind"] != "paper")'
    )
    assert milvus_filter({"n": {"$in": [1, 2.5, True]}}, "/a") == (
        '(metadata["n"] == 1 or metadata["n"] == 2.5 or metadata["n"] == true) and source like "/a%"'
    )
    assert milvus_filter(None, None) is None


def test_deployments_with_other_prefixes_never_see_each_other(tmp_path, milvus_server, prefix):
    other = prefix + "x"
    with Engine(milvus_settings(tmp_path / "one", milvus_server, prefix)) as one, \
            Engine(milvus_settings(tmp_path / "two", milvus_server, other)) as two:  # fmt: skip
        one.collection("notes", create=True).upsert(DOCS)
        one.collection("notes-v2", create=True).upsert(DOCS[:1])  # names sharing a prefix stay apart
        one.collection("notes_v2", create=True).upsert(DOCS[:2])
        two.collection("notes", create=True).upsert(DOCS[:3])
        assert one.collection_names() == ["notes", "notes-v2", "notes_v2"] and two.collection_names() == ["notes"]
        counts = {i.name: i.documents for i in one.list_collections()}
        assert counts == {"notes": 6, "notes-v2": 1, "notes_v2": 2}
        two.drop("notes")
        assert one.collection("notes").info().documents == 6
        with pytest.raises(CollectionNotFound):
            two.collection("notes")
    with Engine(milvus_settings(tmp_path / "three", milvus_server, prefix)) as three:  # another frontend
        assert three.collection_names() == ["notes", "notes-v2", "notes_v2"]
        assert three.collection("notes").get("ü-4").text == "ünïcode colouring of graphs ✓"


def test_a_collection_of_another_schema_version_is_refused(tmp_path, milvus_server, prefix):
    with Engine(milvus_settings(tmp_path, milvus_server, prefix)) as engine:
        col = engine.collection("notes", create=True)
        store = engine.backend.documents()
        store.write_meta("notes", {**col.meta, "schema": 99})
    with Engine(milvus_settings(tmp_path, milvus_server, prefix)) as engine:
        with pytest.raises(CorruptIndex, match="schema 99.*reads schema 1"):
            engine.collection("notes")


def test_a_crashed_batch_is_invisible_and_removed_by_the_next_write(tmp_path, milvus_server, prefix):
    with Engine(milvus_settings(tmp_path, milvus_server, prefix)) as engine:
        col = engine.collection("notes", create=True)
        col.upsert(DOCS[:3])
        before = [h.id for h in col.search("colouring", k=10).hits]
        # a writer killed after writing its rows, before its commit: rows above the watermark
        stray = Document(id="stray", text="colouring colouring colouring")
        chunks = chunk_document(stray, engine.embedder.spanner, 256, 0.2)
        rows = col.rows
        rows.write([RowDocument(stray, content_hash(stray), chunks, ["colour colour colour"])],
                   engine.embedder.embed_documents([c.text for c in chunks]), rows.meta["watermark"] + 1)  # fmt: skip
        assert [h.id for h in col.search("colouring", k=10).hits] == before  # not visible anywhere
        assert col.info().documents == 3
        with pytest.raises(Exception, match="stray"):
            col.get("stray")
        col.upsert(DOCS)  # the next write removes the stray rows first, then commits its own batch
        every = rows.client.query(rows.rows, filter="", output_fields=["doc_id"])
        assert sorted(r["doc_id"] for r in every) == sorted(d.id for d in DOCS)


def test_a_replaced_document_shows_its_new_version_only_even_before_cleanup(tmp_path, milvus_server, prefix):
    with Engine(milvus_settings(tmp_path, milvus_server, prefix)) as engine:
        col = engine.collection("notes", create=True)
        col.upsert(DOCS)
        rows = col.rows
        new = Document(id="a1", text="completely new words about sorting", metadata={"kind": "new"})
        chunks = chunk_document(new, engine.embedder.spanner, 256, 0.2)
        generation = rows.meta["watermark"] + 1
        rows.write([RowDocument(new, content_hash(new), chunks, ["complet new word sort"])],
                   engine.embedder.embed_documents([c.text for c in chunks]), generation)  # fmt: skip
        rows.commit(generation, ["a1"])  # committed; the old rows are still there (a writer killed here)
        assert col.get("a1").text == new.text and col.info().chunks == 6  # the old rows of a1 are hidden
        assert [h.id for h in col.search("sorting", k=3, mode="bm25").hits] == ["a1"]
        assert "a1" not in [h.id for h in col.search("planar maps", k=6, mode="bm25").hits]  # old text: gone
        col.delete(["c5"])  # the next write call removes the old rows
        every = rows.client.query(rows.rows, filter="", output_fields=["doc_id"])
        assert len(every) == 5 and col.info().chunks == 5 and not rows.meta["replacing"]


def test_documents_are_rebuilt_exactly_from_their_chunks(tmp_path, milvus_server, prefix):
    texts = ["  leading spaces then words " * 30 + "\n\n trailing  ", "x", "é" * 3 + " word " * 200 + "\t", " "]
    docs = [Document(id=f"t{i}", text=t, metadata={"n": i}) for i, t in enumerate(texts)]
    settings = milvus_settings(tmp_path, milvus_server, prefix, chunking={"max_tokens": 16, "overlap": 0.0})
    with Engine(settings) as engine:
        col = engine.collection("notes", create=True)
        col.upsert(docs)
        for doc in docs:
            assert col.get(doc.id) == doc
        assert col.chunk_count("t0") > 5
        window = col.chunk_window("t0", 2, window=1)
        assert [w[0] for w in window] == [1, 2, 3] and all(docs[0].text[a:b] == t for _, a, b, t in window)


def test_the_plain_vector_store_needs_no_dimension_up_front(tmp_path, milvus_server, prefix):
    from diver.config import StoreSettings
    from diver.index.stores.milvus import MilvusBackend

    backend = MilvusBackend(StoreSettings(backend="milvus", milvus_uri=milvus_server.uri, milvus_prefix=prefix), tmp_path)
    store = backend.open(backend.store_name("abcd", "notes"), create=True)
    assert store.count() == 0 and store.all_keys() == [] and store.query(np.ones((1, 3)), 3) == [[]]
    store.add(["k"], np.ones((1, 3), dtype=np.float32))
    assert store.count() == 1
    backend.close()


def test_a_collection_dropped_or_recreated_by_another_frontend(tmp_path, milvus_server, prefix):
    with Engine(milvus_settings(tmp_path / "one", milvus_server, prefix)) as one, \
            Engine(milvus_settings(tmp_path / "two", milvus_server, prefix)) as two:  # fmt: skip
        held = one.collection("notes", create=True)
        held.upsert(DOCS)
        assert two.collection("notes").info().documents == 6
        two.drop("notes")
        with pytest.raises(CollectionNotFound):
            one.collection("notes")
        with pytest.raises(CollectionNotFound):
            held.search("colouring")  # a handle kept across the drop
        two.collection("notes", create=True).upsert(DOCS[:2])
        assert one.collection("notes").info().documents == 2
        assert one.collection("notes") is one.collection("notes")  # one instance (one write lock) per process


IDLE_CLIENT = """
import sys, time
import pymilvus
from diver.config import StoreSettings
from diver.index.stores.milvus_client import open_client
uri, ours = sys.argv[1], sys.argv[2] == "ours"
def client():
    if ours:
        return open_client(StoreSettings(backend="milvus", milvus_uri=uri, milvus_timeout_s=10.0))
    return pymilvus.MilvusClient(uri=uri, timeout=10.0)
first = client()
first.list_collections()
time.sleep(150)  # measured: GOAWAY ~130 s after the first call (pymilvus 3.0, grpcio 1.81)
first.list_collections()
client().list_collections()
"""


def test_an_idle_client_is_not_sent_away_for_too_many_pings(milvus_server):
    """pymilvus' default 10 s keepalive breaks gRPC's default ping policy (milvus-lite's): after ~2 min
    idle the server answers GOAWAY "too_many_pings", and a call at that moment fails UNAVAILABLE (a CI
    failure). Our client sends no idle pings. The plain pymilvus client runs beside it as the control."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "GRPC_VERBOSITY": "ERROR"}
    runs = {kind: subprocess.Popen([sys.executable, "-c", IDLE_CLIENT, milvus_server.uri, kind], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for kind in ("ours", "pymilvus")}  # fmt: skip
    out = {kind: proc.communicate(timeout=330) for kind, proc in runs.items()}
    assert runs["ours"].returncode == 0, out["ours"][1][-3000:]
    assert "too_many_pings" not in out["ours"][1], out["ours"][1][-3000:]
    assert "too_many_pings" in out["pymilvus"][1], (
        "control: pymilvus' own defaults no longer provoke GOAWAY (a new pymilvus or grpcio?); "
        "the keepalive options in milvus_client.GRPC_OPTIONS may be unnecessary now")


def _sealed_files(server, rows: str) -> list[str]:
    """milvus-lite's flushed data files of one Milvus collection (rows it searches through an index)."""
    return sorted(p.name for p in (server.data_dir / "collections" / rows).rglob("*.parquet"))


def test_an_upsert_flushes_once_enough_rows_were_written(tmp_path, milvus_server, prefix):
    """milvus-lite scans unflushed rows at every search (214 -> 14 ms per BM25 query at 1,660 chunks once
    flushed): an upsert that brings this process' unflushed rows to store.milvus_flush_rows flushes at its
    end; fewer rows flush nothing (Milvus rate-limits flush); rankings are the same either way."""
    found = {}
    for threshold, name in [(1, "each"), (len(DOCS) + 1, "across"), (0, "never")]:
        store = milvus_store(milvus_server, f"{prefix}{name}", milvus_flush_rows=threshold)
        with Engine(make_settings(tmp_path / name, store=store)) as engine:
            col = engine.collection("lib", create=True)
            col.upsert(DOCS[:3])
            col.upsert(DOCS[3:])
            first = _sealed_files(milvus_server, col.rows.rows)
            col.upsert([Document(id=d.id, text=d.text + " again", metadata=d.metadata) for d in DOCS])
            found[name] = (first, _sealed_files(milvus_server, col.rows.rows),
                           [(h.id, round(h.score, 5)) for h in col.search("colouring graphs", k=10).hits])  # fmt: skip
    assert found["each"][0] != [] and found["across"][0] == [] and found["never"][0] == []  # 3 + 3 rows < 7
    assert found["across"][1] != [] and found["never"][1] == []  # + 6 replacing rows: 12 >= 7
    assert found["each"][2] == found["across"][2] == found["never"][2] and found["never"][2]


def test_a_refused_flush_is_a_warning_and_the_upsert_stands(tmp_path, milvus_server, prefix, caplog):
    """Milvus rate-limits flush: a refusal after the batch committed leaves the documents written and
    searchable, says so in a warning, and the next upsert over the threshold tries again."""
    import pymilvus

    store = milvus_store(milvus_server, prefix, milvus_flush_rows=1)
    with Engine(make_settings(tmp_path, store=store)) as engine:
        col = engine.collection("lib", create=True)
        client = col.rows.client
        calls = []

        def refuse(name, **kwargs):
            calls.append(name)
            raise pymilvus.MilvusException(message="request is rejected by grpc RateLimiter middleware (flush)")

        client._client.flush = refuse  # the server's answer under Milvus' flush rate limit
        with caplog.at_level("WARNING", logger="diver.index.stores.milvus_rows"):
            report = col.upsert(DOCS)
        assert report.added == len(DOCS) and col.info().documents == len(DOCS)
        assert {h.id for h in col.search("colouring", k=10, mode="bm25").hits} == {d.id for d in DOCS}
        assert "did not flush" in caplog.text and "RateLimiter" in caplog.text
        del client._client.flush
        col.upsert([Document(id="new", text="colouring again")])
        assert calls == [col.rows.rows] and _sealed_files(milvus_server, col.rows.rows)
