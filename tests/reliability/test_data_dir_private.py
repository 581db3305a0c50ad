"""The data directory is the user's alone (issue 21, item 4): created 0700, every file the engine writes
0600 (catalog, vectors, BM25 segments, logs, locks), and a second local user reads none of it."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from users_support import other_user, run_as, shared_dir  # noqa: F401 - fixtures

from diver.config import load_settings
from diver.index.engine import Engine
from diver.service.client import RemoteEngine
from diver.text.documents import Document

READ_ALL = r'''
import os, sys
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f: f.read(64)
        print("READ", path)
    except OSError as exc:
        print("DENIED", path, type(exc).__name__)
try:
    os.listdir(sys.argv[1].rsplit("/", 1)[0]); print("LISTED")
except OSError:
    pass
'''


def open_modes(root: Path) -> list[str]:
    """Paths under ``root`` (itself included) that group or other may read, write or enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not path.is_symlink() and mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {mode:o}")
    return found


def test_everything_the_engine_writes_is_private(other_user: str, shared_dir: Path) -> None:  # noqa: F811
    data_dir = shared_dir / "home" / "data"  # the parent is made by us with the usual umask
    settings = load_settings(data_dir=data_dir, embedding={"provider": "hashing"},
                             engine={"mode": "shared", "idle_timeout_s": 20})  # fmt: skip
    with RemoteEngine(settings) as engine:
        notes = engine.collection("notes", create=True)
        notes.upsert([Document(id=f"d{i}", text=f"private note {i} about the merger") for i in range(30)])
        assert notes.search("merger", k=3).hits  # builds the BM25 segments too
        engine.stop_engine()
    assert open_modes(data_dir) == []
    catalogs = [str(p) for p in data_dir.rglob("*.sqlite*")] + [str(data_dir / "engine.log")]
    assert catalogs
    attack = run_as(other_user, READ_ALL, *catalogs)
    assert "READ" not in attack.stdout and "LISTED" not in attack.stdout, attack.stdout
    assert attack.stdout.count("DENIED") == len(catalogs), attack.stdout + attack.stderr


def test_an_existing_data_dir_open_to_others_is_warned_about(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    os.chmod(data_dir, 0o755)
    with caplog.at_level(logging.WARNING, logger="diver.index.engine"):
        with Engine(load_settings(data_dir=data_dir, embedding={"provider": "hashing"})):
            pass
    assert f"data directory {data_dir} has mode 755" in caplog.text
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755  # left as the user made it
    fresh = tmp_path / "fresh" / "data"
    with Engine(load_settings(data_dir=fresh, embedding={"provider": "hashing"})):
        pass
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
