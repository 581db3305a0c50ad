"""kill -9 of `diver index <folder>` while it syncs a changed folder (edits, deletions, renames, additions):
every reopen is consistent, no document is half-written, every visible document is a file's old or new
state; re-running the sync then makes the collection equal to the folder, moving the files still to move."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from reliability_support import assert_consistent
from test_crash_safety import env_for, kill_at_random_point, settings_for

from diver.engine import Engine
from diver.index.sync import apply_sync, plan_sync, read_source
from diver.text.ingest import FolderRead

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SEED = 20261204
FILES = 400
WORDS = "triangle prime graph vector matrix entropy signal proof lemma integral series limit field".split()


def text(rng: random.Random, marker: str) -> str:
    return f"{marker}\n" + " ".join(rng.choice(WORDS) for _ in range(rng.randint(100, 500)))


def write_v1(folder: Path, rng: random.Random) -> None:
    for i in range(FILES):
        path = folder / f"part{i % 7}" / f"file {i:03d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text(rng, f"marker{i}v1"), encoding="utf-8")


def change_to_v2(folder: Path, rng: random.Random) -> dict[str, str]:
    """Edit, delete and rename 80 files each, add 80; returns the expected {relative path: text}."""
    files = sorted(p for p in folder.rglob("*.md"))
    rng.shuffle(files)
    for path in files[:80]:
        path.write_text(text(rng, f"{path.stem}v2"), encoding="utf-8")
    for path in files[80:160]:
        path.unlink()
    for path in files[160:240]:
        path.rename(path.with_name("renamed " + path.name))
    for i in range(80):
        (folder / "new").mkdir(exist_ok=True)
        (folder / "new" / f"added {i}.md").write_text(text(rng, f"added{i}"), encoding="utf-8")
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8") for p in folder.rglob("*.md")}


def sync(data_dir: Path, folder: Path) -> object:
    read = read_source(folder, allowed_roots=None, max_bytes=5_000_000)
    assert isinstance(read, FolderRead)
    with Engine(settings_for(data_dir)) as engine:
        col = engine.collection("many", create=True)
        return apply_sync(col, plan_sync(col, read), 40)


def test_kill_9_during_a_sync_then_rerun(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    pristine, data_dir = tmp_path / "v1", tmp_path / "data"
    write_v1(pristine, rng)
    v1 = {p.relative_to(pristine).as_posix(): p.read_text(encoding="utf-8") for p in pristine.rglob("*.md")}
    catalog = data_dir / "collections" / "many" / "catalog.sqlite"
    trials = []
    for trial in range(3):
        folder = tmp_path / "docs"  # the same root every trial: the collection holds this folder's documents
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(pristine, folder)
        sync(data_dir, folder)  # v1 indexed (after the first trial: v2 synced back to v1)
        v2 = change_to_v2(folder, random.Random(SEED + trial))
        outcome = kill_at_random_point(["index", "many", str(folder)], env_for(data_dir), catalog, rng, 8)
        with Engine(settings_for(data_dir)) as engine:
            col = engine.collection("many")
            ids = assert_consistent(col)
            for doc_id in ids:
                now = col.get(doc_id).text
                assert now in (v1.get(doc_id), v2.get(doc_id)), f"{doc_id} is neither its old nor new text"
            trials.append({"trial": trial, "visible": len(ids), **outcome})
        progress = sync(data_dir, folder)
        with Engine(settings_for(data_dir)) as engine:
            col = engine.collection("many")
            assert assert_consistent(col) == set(v2)
            assert {i: col.get(i).text for i in v2} == v2
        assert sync(data_dir, folder).unchanged == len(v2)  # complete: nothing left to do
        trials[-1]["rerun"] = {"moved": progress.moved, "removed": progress.removed}
    print(trials)  # noqa: T201 - the trial log, shown with -s
    assert any(not t["finished_before_kill"] for t in trials), trials
