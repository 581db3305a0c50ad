"""Background indexing jobs: one worker thread per job, progress counters, clean cancellation.

A job indexes its documents in batches of ``batch_size`` through ``Collection.upsert``; each batch
commits atomically, and cancellation is checked between batches, so a cancelled job leaves every
committed batch searchable and nothing half-written.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diver.errors import DiverError, InputError
from diver.index.sync import NoDocuments, Source, SyncProgress, apply_sync, plan_sync
from diver.text.documents import Document
from diver.text.ingest import FolderRead

log = logging.getLogger(__name__)
MAX_ERRORS = 200
MAX_FINISHED = 100

Reader = Callable[[], Source]
"""Reads the path (a folder's ``FolderRead``, or a file's (documents, skipped)); runs in the job's thread."""
ScopedReader = Callable[[frozenset[str] | None], Source]
"""A watch's reader: the whole folder (None) or only the changed relative paths."""
COUNTERS = ("documents_done", "added", "replaced", "unchanged", "moved", "removed", "chunks")


class JobNotFound(InputError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no indexing job {job_id!r} (finished jobs are kept for a while; ids come from index_path)")


@dataclass
class IndexJob:
    id: str
    collection: str
    path: str
    state: str = "running"
    files: int = 0
    documents_done: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    chunks: int = 0
    changes: list[str] | None = None  # a dry run's plan
    watch: bool = False
    duplicate_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    done_event: threading.Event = field(default_factory=threading.Event, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def busy(self) -> bool:
        """Indexing now (a watch between syncs is not)."""
        return self.state == "running"

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def snapshot(self) -> dict[str, Any]:
        """Counters so far, rate (documents/s) and ETA (s), consistent with each other."""
        with self.lock:
            elapsed = self.elapsed_s
            rate = self.documents_done / elapsed if elapsed > 0 else 0.0
            left = max(0, self.files - self.documents_done)
            eta = 0.0 if not self.busy else (round(left / rate, 1) if rate > 0 else None)
            return {
                "job": self.id, "collection": self.collection, "path": self.path, "state": self.state,
                "files": self.files, "documents_done": self.documents_done, "added": self.added,
                "replaced": self.replaced, "unchanged": self.unchanged, "moved": self.moved,
                "removed": self.removed, "chunks": self.chunks,
                "rate_docs_per_s": round(rate, 2), "eta_s": eta, "elapsed_s": round(elapsed, 2),
                "errors": list(self.errors),
            }  # fmt: skip

    def _error(self, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)


class JobManager:
    """Starts and tracks indexing jobs of one engine."""

    def __init__(self, engine: Any, batch_size: int | None = None) -> None:
        self.engine = engine
        self.batch_size = batch_size or engine.settings.store.write_batch_size
        self._jobs: dict[str, IndexJob] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._guard = threading.Lock()

    def start(self, collection: str, path: str, reader: Reader,
              on_progress: Callable[[IndexJob], None] | None = None, dry_run: bool = False) -> IndexJob:  # fmt: skip
        """Start indexing in a worker thread; returns at once. A folder is synced (``diver.index.sync``);
        ``dry_run`` only plans (the job's ``changes``)."""
        job = IndexJob(id=uuid.uuid4().hex[:12], collection=collection, path=path)
        return self._launch(job, lambda: self._run(job, reader, on_progress, dry_run))

    def start_watch(self, collection: str, path: str, reader: ScopedReader, folder: Path, debounce_ms: int,
                    max_watches: int) -> IndexJob:  # fmt: skip
        """Sync ``folder`` now, then after every debounced batch of changes, until cancelled."""
        watching = self.watches()
        same = [j.id for j in watching if (j.collection, j.path) == (collection, path)]
        if same:
            raise InputError(f"{path!r} is watched into {collection!r} already by job {same[0]}")
        if len(watching) >= max_watches:
            raise InputError(f"{len(watching)} folders are watched already (server.max_watches); stop one "
                             "with cancel_index(job)")  # fmt: skip
        job = IndexJob(id=uuid.uuid4().hex[:12], collection=collection, path=path, watch=True)
        return self._launch(job, lambda: self._run_watch(job, reader, folder, debounce_ms))

    def watches(self) -> list[IndexJob]:
        """Watch jobs still watching."""
        with self._guard:
            return [j for j in self._jobs.values() if j.watch and not j.done_event.is_set()]

    def _launch(self, job: IndexJob, target: Callable[[], None]) -> IndexJob:
        thread = threading.Thread(target=target, name=f"diver-index-{job.id}", daemon=True)
        with self._guard:
            self._prune()
            self._jobs[job.id] = job
            self._threads[job.id] = thread
        thread.start()
        return job

    def get(self, job_id: str) -> IndexJob:
        with self._guard:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def cancel(self, job_id: str) -> IndexJob:
        """Ask the job to stop after the batch it is writing; returns at once (see ``wait``)."""
        job = self.get(job_id)
        job.cancel_event.set()
        return job

    def wait(self, job_id: str, timeout: float | None = None) -> IndexJob:
        job = self.get(job_id)
        job.done_event.wait(timeout)
        return job

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel every running job and wait for it (before the engine closes)."""
        with self._guard:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel_event.set()
        deadline = time.monotonic() + timeout
        for job in jobs:
            if not job.done_event.wait(max(0.0, deadline - time.monotonic())):
                log.warning("indexing job %s did not stop within %.0fs", job.id, timeout)

    def _prune(self) -> None:
        finished = [j for j in self._jobs.values() if j.done_event.is_set()]
        for job in sorted(finished, key=lambda j: j.finished or 0)[: max(0, len(finished) - MAX_FINISHED)]:
            self._jobs.pop(job.id, None)
            self._threads.pop(job.id, None)

    def _run(self, job: IndexJob, reader: Reader, on_progress: Callable[[IndexJob], None] | None,
             dry_run: bool) -> None:  # fmt: skip
        try:
            source = reader()
            if isinstance(source, FolderRead):
                self._sync(job, source, on_progress, dry_run, first=True)
            elif dry_run:
                raise InputError("dry_run applies to a folder (a file or .jsonl is only ever added or replaced)")
            else:
                self._upsert(job, source, on_progress)
            final = "cancelled" if job.cancel_event.is_set() and job.documents_done < job.files else "done"
        except Exception as exc:  # noqa: BLE001 - a worker thread must record, not lose, an unexpected error
            final = self._failed(job, exc)
        self._finish(job, final, on_progress)

    def _run_watch(self, job: IndexJob, reader: ScopedReader, folder: Path, debounce_ms: int) -> None:
        from diver.index.watch import watch_changes

        def first_sync() -> None:
            self._sync(job, _folder(reader(None)), None, False, first=False)
            with job.lock:
                job.state = "watching"

        try:
            for scope in watch_changes(folder, job.cancel_event, debounce_ms, first_sync):
                try:
                    self._sync(job, _folder(reader(scope)), None, False, first=False)
                except DiverError as exc:  # a failed sync (an unreadable folder): said, and the watch goes on
                    with job.lock:
                        job._error(f"sync failed: {exc}")
            final = "stopped"
        except Exception as exc:  # noqa: BLE001 - a worker thread must record, not lose, an unexpected error
            final = self._failed(job, exc)
        self._finish(job, final, None)

    def _failed(self, job: IndexJob, exc: Exception) -> str:
        if not isinstance(exc, DiverError):
            log.error("indexing job %s crashed", job.id, exc_info=exc)
        with job.lock:
            job._error(f"failed: {exc}" if isinstance(exc, DiverError) else f"failed: {type(exc).__name__}: {exc}")
        return "failed"

    def _finish(self, job: IndexJob, final: str, on_progress: Callable[[IndexJob], None] | None) -> None:
        with job.lock:
            job.state = final
            job.finished = time.monotonic()
        job.done_event.set()
        if on_progress is not None:
            on_progress(job)

    def _upsert(self, job: IndexJob, source: tuple[list[Document], list[str]],
                on_progress: Callable[[IndexJob], None] | None) -> None:  # fmt: skip
        docs, skipped = source
        with job.lock:
            job.files = len(docs)
            for reason in skipped:
                job._error(f"skipped {reason}")
        if not docs:
            raise InputError(f"no documents to index in {job.path!r}")
        col = self.engine.collection(job.collection, create=True)
        for batch in _batches(docs, self.batch_size):
            if job.cancel_event.is_set():
                break
            report = col.upsert(batch)
            with job.lock:
                job.documents_done += len(batch)
                job.added += report.added
                job.replaced += report.replaced
                job.unchanged += report.unchanged
                job.chunks += report.chunks
                job.duplicate_ids.extend(report.duplicate_ids)
            if on_progress is not None:
                on_progress(job)

    def _sync(self, job: IndexJob, read: FolderRead, on_progress: Callable[[IndexJob], None] | None,
              dry_run: bool, first: bool) -> None:  # fmt: skip
        """Plan and apply one sync of a folder; counts add to the job's (a watch runs many)."""
        target: Any = NoDocuments()
        if not dry_run or job.collection in self.engine.collection_names():
            target = self.engine.collection(job.collection, create=not dry_run)
        plan = plan_sync(target, read)
        with job.lock:
            job.files += plan.total
            for reason in read.skipped:
                job._error(f"skipped {reason}")
            if dry_run:
                job.changes = plan.changes()
        if first and not plan.total:
            raise InputError(f"no documents to index in {job.path!r}")
        if dry_run:
            return
        base = {name: getattr(job, name) for name in COUNTERS}

        def counted(progress: SyncProgress) -> None:
            with job.lock:
                for name in COUNTERS:
                    setattr(job, name, base[name] + getattr(progress, name))
                job.duplicate_ids[:] = progress.duplicate_ids
            if on_progress is not None:
                on_progress(job)

        progress = apply_sync(target, plan, self.batch_size, counted, job.cancel_event)
        with job.lock:
            for note in progress.notes():
                job._error(f"note: {note}")


def _folder(source: Source) -> FolderRead:
    if not isinstance(source, FolderRead):
        raise InputError("only a folder can be watched")
    return source


def _batches(items: Sequence[Document] | Iterable[Document], size: int) -> Iterable[list[Document]]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]
