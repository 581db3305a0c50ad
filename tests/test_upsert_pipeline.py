"""The pipelined upsert: batch n+1 is chunked and embedded while batch n is written; commits stay in order."""

from __future__ import annotations

import threading
import time

import pytest
from tests_support import make_settings

from diver.engine import Engine
from diver.index.upserts import run_pipelined
from diver.text.documents import Document


def test_pipeline_overlaps_and_commits_in_order():
    events: list[str] = []
    lock = threading.Lock()

    def prepare(n: int) -> int:
        with lock:
            events.append(f"prepare-start {n}")
        time.sleep(0.05)
        with lock:
            events.append(f"prepare-end {n}")
        return n

    def commit(n: int) -> None:
        with lock:
            events.append(f"commit-start {n}")
        time.sleep(0.05)
        with lock:
            events.append(f"commit-end {n}")

    run_pipelined(iter(range(5)), prepare, commit)
    commits = [e for e in events if e.startswith("commit-start")]
    assert commits == [f"commit-start {n}" for n in range(5)]
    # batch 1 was being prepared while batch 0 committed
    assert events.index("prepare-start 1") < events.index("commit-end 0")
    assert events.index("prepare-end 1") > events.index("commit-start 0")


def test_pipeline_stops_at_a_failing_batch_after_committing_the_ones_before():
    committed: list[int] = []

    def prepare(n: int) -> int:
        if n == 2:
            raise RuntimeError("embedding endpoint down")
        return n

    with pytest.raises(RuntimeError, match="endpoint"):
        run_pipelined(iter(range(5)), prepare, committed.append)
    assert committed == [0, 1]


DOCS = [Document(id=f"d{i}", text=f"theorem {i} " + "word " * (5 + 40 * (i % 3))) for i in range(7)]


def test_ids_repeated_in_the_next_batch_report_as_sequential_upserts_did(tmp_path):
    """A document of batch n repeated in batch n+1 is planned before batch n commits: checked again at
    commit, the report and the visible content equal those of one batch after the other."""
    settings = make_settings(tmp_path, store={"write_batch_size": 2})
    changed = Document(id="d0", text="theorem zero, second version")
    with Engine(settings) as eng:
        col = eng.collection("maths", create=True)
        report = col.upsert(DOCS[:2] + [DOCS[0], DOCS[1]] + [changed] + DOCS[2:])
        assert (report.added, report.replaced, report.unchanged) == (7, 1, 2)
        assert sorted(report.duplicate_ids) == ["d0", "d1"]
        assert col.get("d0").text == changed.text
        again = col.upsert(DOCS[1:])
        assert (again.added, again.replaced, again.unchanged) == (0, 0, 6)
        assert col.info().documents == 7
