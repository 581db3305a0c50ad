"""BM25 segments read from the catalog (issue 21, item 7): the chunk texts are the catalog's spans, sliced
in Python (the old SQL ``substr`` gave the same texts in time quadratic in a document's size; the speed is
measured by benchmarks/big_document_bench.py, not here)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from diver.config import load_settings
from diver.index.engine import Engine
from diver.index.lexical import store
from diver.text.documents import Document

SUBSTR = ('SELECT d.seq, d.id, c.idx, substr(d.text, c.start + 1, c."end" - c.start) FROM documents d '
          "JOIN chunks c ON c.doc_id = d.id WHERE d.seq > ? ORDER BY d.seq, c.idx")  # fmt: skip


def test_segment_chunk_texts_are_the_catalog_spans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(data_dir=tmp_path, embedding={"provider": "hashing"}, chunking={"max_tokens": 16})
    long_unicode = " ".join(f"mot{i} é😀 ∑ 数学{i}" for i in range(300))  # astral + CJK: character offsets
    docs = [Document(id="short", text="one small note"), Document(id="long", text=long_unicode),
            Document(id="long-2", text=long_unicode[::-1]), Document(id="x", text="prime " * 200)]  # fmt: skip
    with Engine(settings) as engine:
        engine.collection("notes", create=True).upsert(docs)
        engine.collection("notes").upsert([Document(id="short", text="a replaced note, newer seq")])
        catalog = next(tmp_path.rglob("catalog.sqlite"))
    seen: list[str] = []

    def capture(batches: Any, tokenize: Any) -> Any:
        for batch in batches:
            seen.extend(batch)
        return real([], tokenize)

    real = store.build_postings
    monkeypatch.setattr(store, "build_postings", capture)
    db = sqlite3.connect(str(catalog))
    try:
        for after in (0, 2):  # a full build, and an incremental one after seq 2
            seen.clear()
            segment = store.read_segment(db, after, settings.bm25)
            rows = db.execute(SUBSTR, (after,)).fetchall()
            assert seen == [text for *_, text in rows] and len(rows) > 40
            assert segment is not None and segment.doc_ids == list(dict.fromkeys(r[1] for r in rows))
            assert segment.chunk_index.tolist() == [r[2] for r in rows]
    finally:
        db.close()


def test_a_full_disk_leaves_no_temporary_segment_and_says_so(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Issue 21 item 8: ENOSPC while a segment is written (injected at the third array: a real full disk
    needs a mount this suite cannot make) leaves no ``.tmp-seg-*`` folder and reads "disk full" + where."""
    import errno

    import numpy as np

    from diver.errors import StateError

    settings = load_settings(data_dir=tmp_path, embedding={"provider": "hashing"})
    with Engine(settings) as engine:
        engine.collection("notes", create=True).upsert([Document(id=f"d{i}", text=f"note {i}") for i in range(5)])
        catalog = next(tmp_path.rglob("catalog.sqlite"))
    db = sqlite3.connect(str(catalog))
    segment = store.read_segment(db, 0, settings.bm25)
    db.close()
    assert segment is not None
    real_save, calls = np.save, []

    def full_disk(path: Any, array: Any) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(path, array)

    monkeypatch.setattr(np, "save", full_disk)
    target = tmp_path / "bm25-out"
    target.mkdir()
    with pytest.raises(StateError, match=f"disk full: cannot write the BM25 index under {target}"):
        store.save_segment(segment, target, settings.bm25)
    assert list(target.iterdir()) == []
