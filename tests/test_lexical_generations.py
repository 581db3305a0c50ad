"""Concurrent searches never rebuild an older BM25 generation than the newest built (issue 10, item 6)."""

import threading
import time

from diver.index.lexical.view import LexicalViews
from diver.text.documents import Document

FIRST = [Document(id=f"d{i}", text=f"planar graph {i} with vertices edges and faces") for i in range(20)]
SECOND = [Document(id=f"e{i}", text=f"right triangle {i} hypotenuse and legs") for i in range(20)]


def test_a_search_on_an_older_snapshot_does_not_rebuild_or_delete_the_newer_generation(
    engine, monkeypatch
):
    builds: list[int] = []
    real_build = LexicalViews._build

    def slow_build(self, db, generation):
        builds.append(generation)
        time.sleep(0.3)  # 28 s at 167k chunks in the issue; long enough here for searches to pile up
        return real_build(self, db, generation)

    monkeypatch.setattr(LexicalViews, "_build", slow_build)
    col = engine.collection("maths", create=True)
    col.upsert(FIRST)
    old_snapshot_open, newer_built, errors = threading.Event(), threading.Event(), []

    def old_reader():
        try:
            with col.catalog.snapshot() as db:  # a search that read generation g ...
                db.execute("SELECT COUNT(*) FROM documents").fetchone()  # SQLite snapshots at the first read
                old_snapshot_open.set()
                newer_built.wait(30)  # ... while g+1 was committed and built by other searches
                view = col.lexical.current(db)
                assert view.generation >= col.catalog.generation
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    reader = threading.Thread(target=old_reader)
    reader.start()
    assert old_snapshot_open.wait(30)
    col.upsert(SECOND)  # generation g+1
    newest = col.catalog.generation
    searchers = [threading.Thread(target=col.search, args=("triangle hypotenuse",)) for _ in range(4)]
    for thread in searchers:
        thread.start()
    for thread in searchers:
        thread.join(60)
    newer_built.set()
    reader.join(60)
    assert not errors, errors
    for _ in range(3):  # later searches reuse the newest view
        hits = col.search("triangle hypotenuse", k=5, mode="bm25").hits
        assert hits and all(h.id.startswith("e") for h in hits)
    assert builds == [newest], f"BM25 built for generations {builds}; only {newest} was needed"
    manifests = sorted(p.name for p in (col.directory / "bm25").glob("gen-*"))
    assert manifests == [f"gen-{newest}.json"]
