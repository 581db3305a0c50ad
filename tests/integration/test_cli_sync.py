"""`diver index <folder>` (sync, --dry-run, --exclude) and `diver watch` as a user runs them, against the
shared engine process (so the sync's moves and folder listing travel over the engine protocol)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
DIVER = [sys.executable, "-m", "diver.cli"]


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}  # shared engine: the default
    env.update(DIVER_DATA_DIR=str(tmp_path / "data"), DIVER_EMBEDDING__PROVIDER="hashing", HF_HUB_OFFLINE="1",
               DIVER_ENGINE__IDLE_TIMEOUT_S="30")  # fmt: skip
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(DIVER + args, env=env, capture_output=True, text=True, timeout=180)  # noqa: S603


def search(query: str, env: dict[str, str]) -> list[str]:
    out = run(["search", "docs", query, "--mode", "bm25", "-k", "3", "--json"], env)
    assert out.returncode == 0, out.stderr
    return [hit["id"] for hit in json.loads(out.stdout)["hits"]]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "my docs"
    for rel, text in {
        "a.md": "alphaquokka", "b.md": "bravonarwhal one", "old.md": "charlieaxolotl moves",
        "gone.txt": "deltapangolin", "skip/me.md": "excludedtext", "logo.png": "not read",
    }.items():  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_index_dry_run_then_sync_then_watch(tmp_path: Path, folder: Path) -> None:
    env = env_for(tmp_path)
    try:
        first = run(["index", "docs", str(folder), "--exclude", "skip/", "--json"], env)
        assert first.returncode == 0, first.stderr
        report: dict[str, Any] = json.loads(first.stdout)
        assert report["added"] == 4 and report["skipped"] == ["unsupported format .png: 1 file (logo.png)"]
        (folder / "b.md").write_text("bravonarwhal two", encoding="utf-8")
        (folder / "gone.txt").unlink()
        (folder / "old.md").rename(folder / "new.md")
        (folder / "added.md").write_text("foxtrotokapi", encoding="utf-8")

        dry = run(["index", "docs", str(folder), "--exclude", "skip/", "--dry-run"], env)
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.splitlines()[:4] == ["  add added.md", "  update b.md", "  move old.md -> new.md",
                                               "  delete gone.txt"]  # fmt: skip
        assert "dry run, nothing written" in dry.stdout and search("deltapangolin", env) == ["gone.txt"]

        synced = json.loads(run(["index", "docs", str(folder), "--exclude", "skip/", "--json"], env).stdout)
        assert {k: synced[k] for k in ("added", "replaced", "moved", "removed", "unchanged")} == {
            "added": 1, "replaced": 1, "moved": 1, "removed": 1, "unchanged": 1}  # fmt: skip
        assert search("deltapangolin", env) == [] and search("charlieaxolotl", env) == ["new.md"]

        watcher = subprocess.Popen(DIVER + ["watch", "docs", str(folder), "--exclude", "skip/", "--debounce-ms",  # noqa: S603
                                   "200"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert watcher.stdout is not None
            lines = [watcher.stdout.readline() for _ in range(2)]
            assert lines[1].startswith("watching "), lines
            (folder / "fresh.md").write_text("hotelgiraffe", encoding="utf-8")
            (folder / "skip" / "more.md").write_text("stillexcluded", encoding="utf-8")
            deadline = time.monotonic() + 60
            while search("hotelgiraffe", env) != ["fresh.md"]:
                assert time.monotonic() < deadline, "the watch did not index the new file"
                time.sleep(0.2)
            assert search("stillexcluded", env) == []
            assert watcher.stdout.readline().startswith("docs: 1 added, 0 replaced")  # printed after the commit
        finally:
            watcher.send_signal(signal.SIGINT)
            out, err = watcher.communicate(timeout=30)
        assert watcher.returncode == 0, err
        assert out.rstrip().endswith("stopped")
    finally:
        run(["engine", "stop"], env)
