"""Folder sync (diver.index.sync): after an edit, a deletion, a rename and an addition, re-syncing makes the
collection equal to the folder; only changed text is embedded (the embedder's calls are counted); a dry
run lists the changes and writes nothing; documents of other folders and of the API are never touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests_support import make_settings

from diver.config import EmbeddingSettings
from diver.engine import Engine
from diver.index.dense.embedders import build_embedder
from diver.index.sync import apply_sync, plan_sync, read_source
from diver.text.documents import make_document
from diver.text.ingest import FolderRead

WORDS = "lemma proof vector matrix entropy signal series limit field graph prime integral".split()
BULK = 150


class CountingEmbedder:
    """The hashing embedder, recording every text it embeds for documents."""

    def __init__(self) -> None:
        self.inner = build_embedder(EmbeddingSettings(provider="hashing"))
        self.embedded: list[str] = []

    def embed_documents(self, texts: list[str]) -> Any:
        self.embedded.extend(texts)
        return self.inner.embed_documents(texts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def long_text(marker: str, words: int) -> str:
    return f"{marker}\n" + " ".join(WORDS[(i * 7) % len(WORDS)] + str(i % 13) for i in range(words))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    for rel, text in {
        "guide/intro.md": "# Intro\nalphaquokka starts here",
        "guide/setup.md": "# Setup\nbravonarwhal version one",
        "notes/old-name.md": long_text("charlieaxolotl", 900),  # several chunks: all must move
        "gone.txt": "deltapangolin will be deleted",
        "ünïcödé/naïve café.md": "echowombat in a unicode path",
        "guide/setup-extra.md": "# Setup extra\nshares a name prefix with setup.md",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    for i in range(BULK):
        (root / "bulk" / f"f{i:03d}.txt").parent.mkdir(exist_ok=True)
        (root / "bulk" / f"f{i:03d}.txt").write_text(f"bulk file {i} token{i}x", encoding="utf-8")
    return root


def read(path: Path) -> FolderRead:
    source = read_source(path, allowed_roots=None, max_bytes=1_000_000)
    assert isinstance(source, FolderRead)
    return source


def sync(col: Any, path: Path, batch: int = 16) -> Any:
    return apply_sync(col, plan_sync(col, read(path)), batch)


def change_folder(root: Path) -> None:
    (root / "guide/setup.md").write_text("# Setup\nbravonarwhal version two", encoding="utf-8")
    (root / "gone.txt").unlink()
    (root / "notes/old-name.md").rename(root / "notes/new-name.md")
    (root / "added.md").write_text("foxtrotokapi is new", encoding="utf-8")


def files_of(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def bm25_ids(col: Any, query: str) -> list[str]:
    return [h.id for h in col.search(query, k=5, mode="bm25").hits]


def test_resync_makes_the_collection_equal_to_the_folder(tmp_path: Path, folder: Path) -> None:
    embedder = CountingEmbedder()
    with Engine(make_settings(tmp_path), embedder=embedder) as engine:
        col = engine.collection("docs", create=True)
        col.upsert([make_document("api-doc", "deltapangolin from the API, not from a file")])
        first = sync(col, folder)
        assert first.added == BULK + 6 and first.removed == 0
        old_chunks = col.chunk_count("notes/old-name.md")
        assert old_chunks >= 3
        change_folder(folder)
        embedder.embedded.clear()

        progress = sync(col, folder)

        assert (progress.added, progress.replaced, progress.moved, progress.removed) == (1, 1, 1, 1)
        assert progress.unchanged == BULK + 3
        # only the edited and the added file were embedded: the moved one's vectors were copied
        assert sorted(embedder.embedded) == sorted([col.get("added.md").text, col.get("guide/setup.md").text])
        assert set(col.folder_documents(str(folder))) == files_of(folder)
        assert bm25_ids(col, "deltapangolin") == ["api-doc"]  # the deleted file's text is gone, the API doc stays
        assert bm25_ids(col, "charlieaxolotl") == ["notes/new-name.md"]
        moved = col.get("notes/new-name.md")
        assert moved.metadata == {"path": "notes/new-name.md", "root": str(folder)}
        assert col.chunk_count("notes/new-name.md") == old_chunks
        for index in range(old_chunks):  # every copied vector still finds its own chunk
            chunk = col.catalog.chunk_text("notes/new-name.md", index)
            assert col.search(chunk, k=1, mode="dense").hits[0].id == "notes/new-name.md"
        assert "version two" in col.get("guide/setup.md").text
        assert bm25_ids(col, "echowombat") == ["ünïcödé/naïve café.md"]

        embedder.embedded.clear()
        again = sync(col, folder)
        assert embedder.embedded == [] and again.unchanged == BULK + 6
        assert (again.added, again.replaced, again.moved, again.removed) == (0, 0, 0, 0)


def test_dry_run_lists_the_changes_and_writes_nothing(tmp_path: Path, folder: Path) -> None:
    embedder = CountingEmbedder()
    with Engine(make_settings(tmp_path), embedder=embedder) as engine:
        col = engine.collection("docs", create=True)
        sync(col, folder)
        change_folder(folder)
        generation = col.catalog.generation
        embedder.embedded.clear()
        plan = plan_sync(col, read(folder))
        assert plan.changes() == [
            "add added.md",
            "update guide/setup.md",
            "move notes/old-name.md -> notes/new-name.md",
            "delete gone.txt",
        ]
        assert plan.unchanged == BULK + 3
        assert col.catalog.generation == generation and embedder.embedded == []


def test_other_folders_are_never_touched(tmp_path: Path, folder: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "theirs.md").write_text("golfibis belongs to the other folder", encoding="utf-8")
    with Engine(make_settings(tmp_path)) as engine:
        col = engine.collection("docs", create=True)
        sync(col, folder)
        sync(col, other)
        (folder / "gone.txt").unlink()
        progress = sync(col, folder)
        assert progress.removed == 1
        assert bm25_ids(col, "golfibis") == ["theirs.md"]
        assert set(col.folder_documents(str(other))) == {"theirs.md"}
        for path in list((folder).rglob("*")):
            if path.is_file():
                path.unlink()
        emptied = sync(col, folder)  # an emptied folder empties its part of the collection, only that
        assert emptied.removed == BULK + 5 and col.folder_documents(str(folder)) == {}
        assert bm25_ids(col, "golfibis") == ["theirs.md"]


def test_an_unreadable_file_is_kept_not_deleted(tmp_path: Path, folder: Path) -> None:
    with Engine(make_settings(tmp_path)) as engine:
        col = engine.collection("docs", create=True)
        sync(col, folder)
        (folder / "guide/intro.md").write_bytes(b"binary now \x00\x01")
        plan = plan_sync(col, read(folder))
        assert plan.delete == [] and plan.kept == ["guide/intro.md"]
        assert "keep guide/intro.md (its file could not be read)" in plan.changes()


def test_a_partial_sync_looks_only_at_its_scope(tmp_path: Path, folder: Path) -> None:
    with Engine(make_settings(tmp_path)) as engine:
        col = engine.collection("docs", create=True)
        sync(col, folder)
        change_folder(folder)
        scoped = read_source(folder, allowed_roots=None, max_bytes=1_000_000,
                             scope=frozenset({"notes/old-name.md", "notes/new-name.md", "bulk"}))  # fmt: skip
        assert isinstance(scoped, FolderRead)
        plan = plan_sync(col, scoped)
        assert plan.changes() == ["move notes/old-name.md -> notes/new-name.md"]
        assert plan.unchanged == BULK  # the folder 'bulk' in scope: its files are looked at
        (folder / "bulk").rename(tmp_path / "bulk-elsewhere")  # a deleted folder arrives as one path
        gone = read_source(folder, allowed_roots=None, max_bytes=1_000_000, scope=frozenset({"bulk"}))
        assert isinstance(gone, FolderRead)
        assert len(plan_sync(col, gone).delete) == BULK


def test_a_retried_move_changes_nothing_more(tmp_path: Path, folder: Path) -> None:
    embedder = CountingEmbedder()
    with Engine(make_settings(tmp_path), embedder=embedder) as engine:
        col = engine.collection("docs", create=True)
        sync(col, folder)
        doc = col.get("gone.txt")
        moved = make_document("moved.txt", doc.text, {**doc.metadata, "path": "moved.txt"})
        embedder.embedded.clear()
        col.move([("gone.txt", moved)])
        report = col.move([("gone.txt", moved)])  # the engine client retries a call whose reply was lost
        assert report.unchanged == 1 and embedder.embedded == []
        assert bm25_ids(col, "deltapangolin") == ["moved.txt"]


def test_the_scope_of_a_batch_of_changes(tmp_path: Path, folder: Path) -> None:
    from diver.index.watch import scope_of

    changed = [folder / "guide/setup.md", folder / "gone-already.md", folder / ".obsidian/workspace.json",
               folder / "node_modules/x/readme.md"]  # fmt: skip
    assert scope_of(folder, map(str, changed)) == frozenset({"guide/setup.md", "gone-already.md"})
    assert scope_of(folder, [str(folder / ".obsidian/workspace.json")]) == frozenset()  # nothing to sync
    assert scope_of(folder, [str(folder / "guide")]) is None  # a folder: look at everything
    assert scope_of(folder, [str(folder / "sub/.gitignore")]) is None  # the rules changed
    assert scope_of(folder, [str(tmp_path / "elsewhere.md")]) is None


def test_a_file_taking_over_an_id_from_elsewhere_is_said(tmp_path: Path, folder: Path) -> None:
    """Ids are relative paths: a document with the same id from the API (or another folder, or an index made
    before folder sync) is replaced, and the sync says so."""
    with Engine(make_settings(tmp_path)) as engine:
        col = engine.collection("docs", create=True)
        col.upsert([make_document("gone.txt", "the API's own gone.txt")])
        progress = sync(col, folder)
        assert progress.taken_over == 1 and progress.added == BULK + 5
        assert "1 files replaced documents with the same id that came from elsewhere" in progress.notes()[0]
        assert sync(col, folder).notes() == []
