"""Folder sync: make a collection's documents from one folder equal to the folder's files.

Documents read from a folder carry metadata ``root`` (the folder's real path) and ``path`` (the file's
path relative to it; also the document id). A sync compares the folder with the collection's documents
of that root only, so documents of other folders, of .jsonl files and of ``index_documents`` are never
touched:

- a file whose content hash is unchanged is skipped; a changed one is re-indexed;
- a document whose file is gone is deleted, unless the file is still there but could not be read this
  time (too large, unreadable): then it is kept and the skip says why;
- a new file with exactly the text of a gone document is a move (a rename): the document changes id and
  path and its vectors are copied, not embedded again.

Applying a plan writes moves, then adds and updates, then deletes, each in batches that commit atomically
(``Collection.move``/``upsert``/``delete``). A sync killed midway leaves every batch either done or not;
planning again from the folder and the collection finds what is left, so re-running completes it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from diver.errors import InputError
from diver.hits import IndexReport
from diver.text.documents import Document, content_hash
from diver.text.ingest import MAX_REPORTED_SKIPS, FolderRead, confine_path, read_documents, read_folder
from diver.text.walk import FolderFilter, in_scope

MAX_RENAME_LOOKUPS = 5000
"""Gone documents whose text is fetched to find renames (beyond this many they are deleted, new files embedded)."""


Source = FolderRead | tuple[list[Document], list[str]]
"""What a path holds: a folder's read (synced), or the documents and skips of a file or .jsonl (upserted)."""


def read_source(
    path: str | Path,
    *,
    allowed_roots: Sequence[Path] | None,
    max_bytes: int,
    max_metadata_bytes: int | None = None,
    max_documents: int | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    scope: frozenset[str] | None = None,
    max_file_bytes: int | None = None,
) -> Source:
    """Read ``path``: a folder as a ``FolderRead`` (optionally only the relative paths in ``scope``), a file
    or .jsonl as ``read_documents`` does."""
    real = confine_path(path, allowed_roots)
    rules = FolderFilter.of(include, exclude)
    if not real.is_dir():
        if include or exclude:
            raise InputError("include/exclude apply to a folder, not to one file")
        return read_documents(real, allowed_roots=allowed_roots, max_bytes=max_bytes,
                              max_metadata_bytes=max_metadata_bytes, max_documents=max_documents,
                              max_file_bytes=max_file_bytes)  # fmt: skip
    roots = None if allowed_roots is None else [Path(os.path.realpath(Path(r).expanduser())) for r in allowed_roots]
    read = read_folder(real, roots, max_bytes, max_documents, rules, scope, max_file_bytes)
    if len(read.skipped) > MAX_REPORTED_SKIPS:
        more = len(read.skipped) - MAX_REPORTED_SKIPS
        read.skipped = read.skipped[:MAX_REPORTED_SKIPS] + [f"... and {more} more skipped"]
    return read


class FolderIndex(Protocol):
    """What planning a sync reads of a collection."""

    def folder_documents(self, root: str) -> dict[str, tuple[str, str | None]]: ...
    def get(self, doc_id: str) -> Document: ...


class NoDocuments:
    """A collection that does not exist yet, for a dry run (which must not create it)."""

    def folder_documents(self, root: str) -> dict[str, tuple[str, str | None]]:
        return {}

    def get(self, doc_id: str) -> Document:
        raise InputError(f"no document {doc_id!r}: the collection does not exist yet")


class SyncTarget(FolderIndex, Protocol):
    """What a sync needs of a collection (``Collection`` or the engine client's ``RemoteCollection``)."""

    def upsert(self, documents: Sequence[Document]) -> IndexReport: ...
    def move(self, moves: Sequence[tuple[str, Document]]) -> IndexReport: ...
    def delete(self, ids: Sequence[str]) -> int: ...


@dataclass
class SyncPlan:
    """What a sync of ``root`` would change (``changes`` lists it for a dry run)."""

    root: str
    add: list[Document] = field(default_factory=list)
    update: list[Document] = field(default_factory=list)
    move: list[tuple[str, Document]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    unchanged: int = 0
    kept: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Units of work: every document read plus every deletion (the job's ``files``)."""
        return self.unchanged + len(self.add) + len(self.update) + len(self.move) + len(self.delete)

    def changes(self) -> list[str]:
        """One line per change: ``add a.md``, ``update b.md``, ``move c.md -> d.md``, ``delete e.md``."""
        return (
            [f"add {d.id}" for d in self.add]
            + [f"update {d.id}" for d in self.update]
            + [f"move {old} -> {d.id}" for old, d in self.move]
            + [f"delete {doc_id}" for doc_id in self.delete]
            + [f"keep {doc_id} (its file could not be read)" for doc_id in self.kept]
        )


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def plan_sync(target: FolderIndex, read: FolderRead) -> SyncPlan:
    """Compare the folder as read with the collection's documents of that folder (within ``read.scope``
    for a partial read: only those paths are looked at)."""
    plan = SyncPlan(root=str(read.root))
    indexed = target.folder_documents(plan.root)
    if read.scope is not None:
        indexed = {i: v for i, v in indexed.items() if in_scope(v[1] or i, read.scope)}
    present = {doc.id for doc in read.documents}
    new: list[Document] = []
    for doc in read.documents:
        known = indexed.get(doc.id)
        if known is None:
            new.append(doc)
        elif known[0] == content_hash(doc):
            plan.unchanged += 1
        else:
            plan.update.append(doc)
    gone: list[str] = []
    for doc_id, (_, path) in sorted(indexed.items()):
        if doc_id in present:
            continue
        (plan.kept if (path or doc_id) in read.unreadable else gone).append(doc_id)
    moved = _renames(target, new, gone)
    plan.move = [(old, doc) for old, doc in moved.items()]
    taken = {doc.id for doc in moved.values()}
    plan.add = [doc for doc in new if doc.id not in taken]
    plan.delete = [doc_id for doc_id in gone if doc_id not in moved]
    return plan


def _renames(target: FolderIndex, new: list[Document], gone: list[str]) -> dict[str, Document]:
    """Old id -> new document with the same text (each new document used once, in sorted id order)."""
    if not new or not gone:
        return {}
    by_text: dict[str, list[Document]] = {}
    for doc in sorted(new, key=lambda d: d.id):
        by_text.setdefault(_digest(doc.text), []).append(doc)
    moves: dict[str, Document] = {}
    for doc_id in gone[:MAX_RENAME_LOOKUPS]:
        candidates = by_text.get(_digest(target.get(doc_id).text))
        if candidates:
            moves[doc_id] = candidates.pop(0)
    return moves


@dataclass
class SyncProgress:
    """Counters of an applied sync, updated after every committed batch."""

    documents_done: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    chunks: int = 0
    taken_over: int = 0
    duplicate_ids: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        """What a caller should know beyond the counts."""
        if not self.taken_over:
            return []
        return [f"{self.taken_over} files replaced documents with the same id that came from elsewhere (another "
                "folder, a .jsonl, index_documents, or an index made before folder sync): ids are relative paths, "
                "so index folders whose paths overlap into separate collections"]  # fmt: skip

    def count(self, report: IndexReport, documents: int, removed: int = 0, moved: int = 0,
              taken: bool = False) -> None:  # fmt: skip
        """Count a committed batch of ``documents`` in: its report (a move's counts as ``moved``; ``taken``: new
        files, whose ``replaced`` documents had the same id but came from elsewhere)."""
        self.taken_over += report.replaced if taken else 0
        self.documents_done += documents
        self.moved += moved
        self.removed += removed
        self.added += 0 if moved else report.added
        self.replaced += report.replaced
        self.unchanged += report.unchanged
        self.chunks += report.chunks
        self.duplicate_ids.extend(report.duplicate_ids)


def apply_sync(
    target: SyncTarget,
    plan: SyncPlan,
    batch_size: int,
    on_batch: Callable[[SyncProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> SyncProgress:
    """Write the plan: moves, then adds and updates, then deletes, in committed batches; ``on_batch`` gets
    the counts so far after each one; ``cancel`` is checked between batches. Returns the counts."""
    progress = SyncProgress(documents_done=plan.unchanged, unchanged=plan.unchanged)
    steps: list[tuple[Sequence[Any], Callable[[list[Any]], None]]] = [
        (plan.move, lambda part: progress.count(target.move(part), len(part), moved=len(part))),
        (plan.add, lambda part: progress.count(target.upsert(part), len(part), taken=True)),
        (plan.update, lambda part: progress.count(target.upsert(part), len(part))),
        (plan.delete, lambda part: progress.count(IndexReport(collection=""), len(part), target.delete(part))),
    ]
    if on_batch is not None:
        on_batch(progress)
    for items, write in steps:
        for start in range(0, len(items), batch_size):
            if cancel is not None and cancel.is_set():
                return progress
            write(list(items[start : start + batch_size]))
            if on_batch is not None:
                on_batch(progress)
    return progress
