"""``diver index`` of a folder (a sync) and ``diver watch``: the command-line side of ``diver.index.sync``.

Sits in diver.service (below diver/cli.py, which registers the commands) and runs against the configured
engine: the shared engine process or an in-process one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from diver.config import DiverSettings
from diver.errors import DiverError, InputError
from diver.index.sync import NoDocuments, SyncProgress, apply_sync, plan_sync, read_source
from diver.index.upserts import progress_bar
from diver.text.ingest import FolderRead, confine_path

Echo = Callable[[str], None]


def read(settings: DiverSettings, path: Path, include: Sequence[str] | None, exclude: Sequence[str] | None,
         scope: frozenset[str] | None = None) -> Any:  # fmt: skip
    """A folder's ``FolderRead`` or a file's (documents, skipped); the CLI reads anywhere (unconfined)."""
    return read_source(path, allowed_roots=None, max_bytes=settings.limits.max_document_bytes, include=include,
                       exclude=exclude, scope=scope, max_file_bytes=settings.limits.max_file_bytes)  # fmt: skip


def sync_folder(engine: Any, collection: str, folder: FolderRead, dry_run: bool, batch_size: int,
                show_progress: bool = True, stop: threading.Event | None = None) -> dict[str, Any]:  # fmt: skip
    """Plan (and unless ``dry_run`` apply) one sync; returns the counts, changes and skips as a dict."""
    exists = collection in engine.collection_names()
    if not exists and not folder.documents:
        raise InputError(f"no documents to index in {str(folder.root)!r}")
    col: Any = engine.collection(collection, create=not dry_run) if exists or not dry_run else NoDocuments()
    plan = plan_sync(col, folder)
    started = time.perf_counter()
    out: dict[str, Any] = {"collection": collection, "path": str(folder.root), "skipped": folder.skipped}
    if dry_run:
        return {**out, **_counts(SyncProgress(unchanged=plan.unchanged)), "changes": plan.changes(),
                "seconds": 0.0}  # fmt: skip
    bar = progress_bar(plan.total, f"syncing {collection}") if show_progress else None
    done = [0]

    def advance(progress: SyncProgress) -> None:
        if bar is not None:
            bar.update(progress.documents_done - done[0])
        done[0] = progress.documents_done

    try:
        progress = apply_sync(col, plan, batch_size, advance, stop)
    finally:
        if bar is not None:
            bar.close()
    out["notes"] = progress.notes()
    return {**out, **_counts(progress), "seconds": round(time.perf_counter() - started, 3)}


def _counts(progress: SyncProgress) -> dict[str, Any]:
    return {
        "added": progress.added, "replaced": progress.replaced, "unchanged": progress.unchanged,
        "moved": progress.moved, "removed": progress.removed, "chunks": progress.chunks,
        "duplicate_ids": progress.duplicate_ids,
    }  # fmt: skip


def summary(result: dict[str, Any]) -> str:
    """One line: ``name: 3 added, 1 replaced, 10 unchanged, 1 moved, 2 removed, 5 chunks embedded in 0.4s``."""
    return (
        f"{result['collection']}: {result['added']} added, {result['replaced']} replaced, "
        f"{result['unchanged']} unchanged, {result['moved']} moved, {result['removed']} removed, "
        f"{result['chunks']} chunks embedded in {result['seconds']:.1f}s"
    )


def watch(engine: Any, settings: DiverSettings, collection: str, path: Path, include: Sequence[str] | None,
          exclude: Sequence[str] | None, debounce_ms: int, echo: Echo,
          stop: threading.Event | None = None) -> None:  # fmt: skip
    """Sync ``path`` now, then after every debounced batch of changes until ``stop`` (or Ctrl-C)."""
    from diver.index.watch import watch_changes

    folder = confine_path(path, None)
    if not folder.is_dir():
        raise InputError("only a folder can be watched")
    batch = settings.store.write_batch_size

    def first_sync() -> None:  # read once the watcher runs: a change made meanwhile comes as the next batch
        echo(summary(sync_folder(engine, collection, read(settings, folder, include, exclude), False, batch)))
        echo(f"watching {folder} (Ctrl-C to stop)")

    for scope in watch_changes(folder, stop or threading.Event(), debounce_ms, first_sync):
        try:
            result = sync_folder(engine, collection, read(settings, folder, include, exclude, scope), False,
                                 batch, show_progress=False, stop=stop)  # fmt: skip
        except DiverError as exc:
            echo(f"sync failed: {exc}")
            continue
        if any(result[k] for k in ("added", "replaced", "moved", "removed")):
            echo(summary(result))
    echo("stopped")  # by ``stop`` or Ctrl-C (watchfiles ends the watch on SIGINT)
