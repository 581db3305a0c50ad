"""On-disk BM25 of a collection: immutable segment folders and one small manifest per generation.

Layout of ``collections/<name>/bm25/``::

    seg-<id>/        one segment: postings (``diver.index.lexical.segments``) and its documents (ids, catalog
                     ``seq`` numbers, first row of each, chunk number of each row); never changed
    gen-<N>.json     generation N of the catalog: its segments in row order, the deleted documents of
                     each, and the highest document ``seq`` it has seen

Crash safety: a segment is written under ``.tmp-<id>`` and renamed when complete, and a manifest is
written to a temporary file and renamed over (``os.replace``) after its segments exist, so a killed
write leaves the previous manifest in force plus debris that is removed later. Loading checks the
sizes of every array against the counts recorded with it; anything unreadable is CorruptIndex, and the
caller falls back to an older manifest (then brought up to date from the catalog) or a full build.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diver.config import BM25Settings
from diver.errors import CorruptIndex, StateError
from diver.index.lexical.bm25 import BM25Tokenizer
from diver.index.lexical.segments import (
    FORMAT_VERSION,
    Postings,
    build_postings,
    load_postings,
    same_settings,
    save_postings,
)

DEBRIS_AGE_S = 3600.0  # an unreferenced segment or temporary file this old belongs to no running write


@dataclass(frozen=True, eq=False)
class Segment:
    """Postings of some documents' chunks (document order, chunks contiguous) and their row map."""

    name: str
    postings: Postings
    doc_ids: list[str]
    doc_seqs: np.ndarray  # int64 catalog seq of each document, ascending
    doc_starts: np.ndarray  # int64 first row of each document
    chunk_index: np.ndarray  # int32 chunk number of each row

    @property
    def doc_ends(self) -> np.ndarray:
        return np.append(self.doc_starts[1:], self.postings.num_rows).astype(np.int64)


def new_name() -> str:
    return f"seg-{uuid.uuid4().hex[:16]}"


def read_segment(db: sqlite3.Connection, after_seq: int, settings: BM25Settings) -> Segment | None:
    """A segment of the catalog's documents with ``seq > after_seq`` (all of them for 0); None if none.

    ``seq`` is the catalog's AUTOINCREMENT key: a replaced document is deleted and inserted again, so it
    gets a new, higher ``seq``; a document's chunks never change under the same ``seq``."""
    doc_ids: list[str] = []
    seqs: list[int] = []
    starts: list[int] = []
    chunk_index: list[int] = []

    def texts() -> Iterator[list[str]]:
        # Chunk spans and document texts come from two scans in ``seq`` order, and each text is sliced
        # in Python: ``substr`` in SQL re-read the whole text for every chunk (quadratic in its size).
        spans = db.execute(
            'SELECT d.seq, d.id, c.idx, c.start, c."end" FROM documents d JOIN chunks c ON c.doc_id = d.id '
            "WHERE d.seq > ? ORDER BY d.seq, c.idx",
            (after_seq,),
        )
        documents = db.execute("SELECT seq, text FROM documents WHERE seq > ? ORDER BY seq", (after_seq,))
        text_seq, text = -1, ""
        while rows := spans.fetchmany(20000):
            batch: list[str] = []
            for seq, doc_id, idx, start, end in rows:
                if not seqs or seqs[-1] != seq:
                    seqs.append(seq)
                    doc_ids.append(doc_id)
                    starts.append(len(chunk_index))
                while text_seq < seq:
                    text_seq, text = documents.fetchone()
                chunk_index.append(idx)
                batch.append(text[start:end])
            yield batch

    postings = build_postings(texts(), BM25Tokenizer(settings).tokenize)
    if not doc_ids:
        return None
    return Segment(
        new_name(),
        postings,
        doc_ids,
        np.array(seqs, np.int64),
        np.array(starts, np.int64),
        np.array(chunk_index, np.int32),
    )


def save_segment(segment: Segment, directory: Path, settings: BM25Settings) -> None:
    """Write ``directory/<segment.name>`` completely, or not at all (a temporary folder renamed)."""
    tmp = directory / f".tmp-{segment.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_postings(segment.postings, tmp, settings)
        np.save(tmp / "doc_seqs.npy", segment.doc_seqs)
        np.save(tmp / "doc_starts.npy", segment.doc_starts)
        np.save(tmp / "chunk_index.npy", segment.chunk_index)
        (tmp / "docs.json").write_text(json.dumps({"doc_ids": segment.doc_ids}, ensure_ascii=False), "utf-8")
        tmp.rename(directory / segment.name)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed write leaves nothing behind
        raise write_failed(exc, directory) from exc


def write_failed(exc: OSError, directory: Path) -> StateError:
    """The error for a BM25 write that failed: "disk full" and where, when that is the cause."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StateError(
            f"disk full: cannot write the BM25 index under {directory} ({exc.strerror}). Free space on that "
            "file system and retry; nothing committed was lost (the index is rebuilt from the catalog)"
        )
    return StateError(f"cannot write the BM25 index under {directory}: {exc}")


def load_segment(directory: Path, name: str, settings: BM25Settings) -> Segment:
    path = directory / name
    postings = load_postings(path, settings)
    try:
        doc_ids = json.loads((path / "docs.json").read_text(encoding="utf-8"))["doc_ids"]
        seqs, starts = np.load(path / "doc_seqs.npy"), np.load(path / "doc_starts.npy")
        chunk_index = np.load(path / "chunk_index.npy")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptIndex(f"BM25 row map at {path} is unreadable: {exc}") from exc
    if not (len(doc_ids) == len(seqs) == len(starts) and len(chunk_index) == postings.num_rows):
        raise CorruptIndex(f"BM25 row map at {path} disagrees with its postings; it will be rebuilt")
    return Segment(name, postings, doc_ids, seqs, starts, chunk_index)


# -- manifests ------------------------------------------------------------------------------------
def manifest_path(directory: Path, generation: int) -> Path:
    return directory / f"gen-{generation}.json"


def write_manifest(
    directory: Path,
    generation: int,
    segments: list[Segment],
    dead_docs: list[np.ndarray | None],
    max_seq: int,
    settings: BM25Settings,
) -> None:
    """Make generation ``generation`` the one on disk: one atomic rename, after its segments exist."""
    body = {
        "format": FORMAT_VERSION,
        "generation": generation,
        "settings": settings.model_dump(),
        "max_seq": max_seq,
        "segments": [
            {"name": s.name, "dead": [] if d is None else np.flatnonzero(d).tolist()}
            for s, d in zip(segments, dead_docs, strict=True)
        ],
    }
    path = manifest_path(directory, generation)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        tmp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_failed(exc, directory) from exc


def read_manifest(path: Path, settings: BM25Settings) -> dict[str, Any]:
    try:
        body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if body.get("format") != FORMAT_VERSION or not same_settings(body.get("settings"), settings):
            raise CorruptIndex(f"BM25 manifest {path} was written with other settings; it will be rebuilt")
        for key in ("generation", "max_seq", "segments"):
            body[key]  # noqa: B018 - presence check
        return body
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptIndex(f"BM25 manifest {path} is unreadable: {exc}") from exc


def manifests(directory: Path) -> list[tuple[int, Path]]:
    """(generation, path) of the manifests on disk, newest first."""
    found = []
    for path in directory.glob("gen-*.json"):
        number = path.name.removeprefix("gen-").removesuffix(".json")
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found, reverse=True)


def _referenced(path: Path) -> set[str]:
    try:
        return {s["name"] for s in json.loads(path.read_text(encoding="utf-8"))["segments"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()  # unreadable: it keeps nothing alive


def clean(directory: Path, generation: int) -> None:
    """Remove manifests older than ``generation`` and the segments only they used, old-format folders
    (``gen-N/``) and debris older than ``DEBRIS_AGE_S``. Never a newer manifest or what one uses, nor a
    fresh segment that another process has not referenced yet."""
    dropped: set[str] = set()
    for number, path in manifests(directory):
        if number < generation:
            dropped |= _referenced(path)
            path.unlink(missing_ok=True)
    keep = set().union(*(_referenced(path) for _, path in manifests(directory)))
    now = time.time()
    for path in directory.iterdir():
        name = path.name
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:
            continue  # removed by another process meanwhile
        old_format = name.startswith("gen-") and path.is_dir()
        unused = name.startswith("seg-") and name not in keep and (name in dropped or age > DEBRIS_AGE_S)
        debris = name.startswith(".tmp-") and age > DEBRIS_AGE_S
        if old_format or unused or debris:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
