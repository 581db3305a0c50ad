"""Chroma collections are found by the exact name a collection records, never by prefix (issue 10, item 2)."""

import json

import pytest
from tests_support import make_settings

import diver.index.engine
from diver.engine import Engine
from diver.index.stores.chroma import ChromaBackend
from diver.text.documents import Document

NOTES = [Document(id=f"n{i}", text=f"note {i} about planar graph colouring and vertex {i}") for i in range(6)]
NOTES_V2 = [
    Document(id=f"w{i}", text=f"second notebook {i}: hypotenuse, triangle and angle {i}") for i in range(6)
]


def _results(col, query):
    return {
        mode: [(h.id, h.scores.get("dense")) for h in col.search(query, k=6, mode=mode).hits]
        for mode in ("dense", "hybrid")
    }


def _two_collections(settings):
    with Engine(settings) as eng:
        eng.collection("notes", create=True).upsert(NOTES)
        col = eng.collection("notes-v2", create=True)
        col.upsert(NOTES_V2)
        return _results(col, "triangle hypotenuse")


def _check_notes_v2(settings, before):
    with Engine(settings) as eng:
        col = eng.collection("notes-v2")
        assert col.store.count() == len(NOTES_V2)
        after = _results(col, "triangle hypotenuse")
        assert after == before
        assert len(after["dense"]) == 6 and all(score is not None for _, score in after["hybrid"])


def test_drop_keeps_a_collection_whose_name_extends_the_dropped_one(tmp_path):
    settings = make_settings(tmp_path)
    before = _two_collections(settings)
    with Engine(settings) as eng:
        eng.drop("notes")
        assert eng.collection_names() == ["notes-v2"]
    _check_notes_v2(settings, before)


def test_crash_rebuild_keeps_a_collection_whose_name_extends_the_rebuilt_one(tmp_path):
    settings = make_settings(tmp_path)
    before = _two_collections(settings)
    with Engine(settings) as eng:
        col = eng.collection("notes")
        col.catalog.set_meta("dirty", "1")  # as if killed mid-write
        old_name = col.meta["store_name"]
    with Engine(settings) as eng:
        col = eng.collection("notes")
        assert col.meta["store_name"] != old_name and col.store.count() == len(NOTES)
    _check_notes_v2(settings, before)


def test_crash_rebuild_deletes_its_recorded_half_built_copy(tmp_path):
    from diver.index.engine import STALE_STORE_NAMES
    from diver.index.stores.chroma import store_collection_name

    settings = make_settings(tmp_path)
    before = _two_collections(settings)
    with Engine(settings) as eng:
        col = eng.collection("notes")
        half_built = store_collection_name(eng.store_id, "notes", 1)  # an earlier rebuild killed mid-copy
        eng.backend.open(half_built, create=True)
        col.meta = {**col.meta, STALE_STORE_NAMES: [half_built]}
        diver.index.engine.write_meta(col.directory, col.meta)
        col.catalog.set_meta("dirty", "1")
        old_name = col.meta["store_name"]
    with Engine(settings) as eng:
        col = eng.collection("notes")
        new_name = col.meta["store_name"]
        assert new_name != old_name and STALE_STORE_NAMES not in col.meta
        assert col.store.count() == len(NOTES)
        names = set(eng.backend.names())
        assert half_built not in names and old_name not in names and new_name in names
    _check_notes_v2(settings, before)
    with Engine(settings) as eng:
        eng.drop("notes")
        eng.drop("notes-v2")
        assert eng.backend.names() == []


def test_store_names_are_namespaced_exact_and_short(tmp_path):
    from diver.index.stores.chroma import MAX_STORE_NAME, store_collection_name

    settings = make_settings(tmp_path)
    with Engine(settings) as eng:
        store_id = eng.store_id
        col = eng.collection("notes", create=True)
        assert col.meta["store_name"] == f"{store_id}.notes"
    assert (settings.data_dir / "store-id").read_text().strip() == store_id
    with Engine(settings) as eng:
        assert eng.store_id == store_id  # stable across opens
    other = make_settings(tmp_path / "other")
    with Engine(other) as eng:
        assert eng.store_id != store_id
    long_a, long_b = "a" * 62 + "x", "a" * 62 + "y"
    names = {
        store_collection_name(store_id, name, version)
        for name in ("notes", "notes-v2", "notes-v1700000000000", long_a, long_b)
        for version in (None, 1700000000000)
    }
    assert len(names) == 10 and max(map(len, names)) <= MAX_STORE_NAME


def test_data_dir_from_before_namespacing_stays_readable(tmp_path, monkeypatch):
    """Collections created with bare chroma names (``notes``) keep working; drop removes exactly theirs."""
    settings = make_settings(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(ChromaBackend, "store_name", lambda self, store_id, name, version=None: name)
        before = _two_collections(settings)
    meta = json.loads((settings.data_dir / "collections" / "notes" / "meta.json").read_text())
    assert meta["store_name"] == "notes"
    with Engine(settings) as eng:
        assert [h.id for h in eng.collection("notes").search("planar graph", k=3, mode="dense").hits]
        eng.drop("notes")
        assert eng.backend.names() == ["notes-v2"]
    _check_notes_v2(settings, before)


@pytest.mark.parametrize("content", ["", "NOT AN ID!"])
def test_a_damaged_store_id_is_a_clear_error(tmp_path, content):
    from diver.errors import StateError

    settings = make_settings(tmp_path)
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "store-id").write_text(content)
    with pytest.raises(StateError, match="store id"):
        Engine(settings)


@pytest.mark.parametrize("name", ["con", "CON", "Nul", "aux", "prn", "com1", "LPT9"])
def test_windows_device_names_are_refused_as_collection_names(name: str) -> None:
    """Issue 21 item 8: a collection folder named con/NUL cannot exist on Windows file systems."""
    from diver.errors import InputError
    from diver.index.engine import validate_collection_name

    with pytest.raises(InputError, match="reserved device name"):
        validate_collection_name(name)
    assert validate_collection_name("console") == "console" and validate_collection_name("com10") == "com10"
