"""TREC run files (``qid Q0 docid rank score tag``) and the partial checkpoints a stage leaves behind."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from diver.errors import InputError

Ranking = list[tuple[str, float]]
"""(document id, score), best first."""


def _atomic_write(path: Path, lines: Iterable[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def write_run(path: Path, run: Mapping[str, Sequence[tuple[str, float]]], tag: str) -> None:
    """Write a run atomically; a file that exists is always complete."""
    for qid, ranking in run.items():
        for doc_id, _ in ranking:
            if any(c.isspace() for c in qid + doc_id):
                raise InputError(f"ids with whitespace cannot go in a TREC run: {qid!r} / {doc_id!r}")
    _atomic_write(
        path,
        (
            f"{qid} Q0 {doc_id} {rank} {score:.6f} {tag}\n"
            for qid, ranking in run.items()
            for rank, (doc_id, score) in enumerate(ranking, 1)
        ),
    )


def read_run(path: Path) -> dict[str, Ranking]:
    run: dict[str, Ranking] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise InputError(f"{path}:{number}: not a TREC run line")
            run.setdefault(parts[0], []).append((parts[2], float(parts[4])))
    return run


def as_scores(run: Mapping[str, Sequence[tuple[str, float]]]) -> dict[str, dict[str, float]]:
    """Rankings as pytrec_eval's ``{qid: {docid: score}}``."""
    return {qid: {doc: score for doc, score in ranking} for qid, ranking in run.items()}


class Checkpoint:
    """Rankings of the queries done so far in an unfinished stage (JSON lines, appended per batch)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Ranking]:
        done: dict[str, Ranking] = {}
        if not self.path.exists():
            return done
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line cut by Ctrl-C: everything after it is redone
                done[row["qid"]] = [(d, float(s)) for d, s in row["hits"]]
        return done

    def append(self, rankings: Mapping[str, Ranking]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            for qid, ranking in rankings.items():
                handle.write(json.dumps({"qid": qid, "hits": ranking}) + "\n")
            handle.flush()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
