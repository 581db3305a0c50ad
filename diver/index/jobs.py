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
from typing import Any

from diver.errors import DiverError, InputError
from diver.text.documents import Document

log = logging.getLogger(__name__)
MAX_ERRORS = 200
MAX_FINISHED = 100

Reader = Callable[[], tuple[Sequence[Document], list[str]]]
"""Returns (documents, skipped-with-reason); runs in the job's thread (reading a folder can be slow)."""


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
    chunks: int = 0
    duplicate_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    done_event: threading.Event = field(default_factory=threading.Event, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def snapshot(self) -> dict[str, Any]:
        """Counters so far, rate (documents/s) and ETA (s), consistent with each other."""
        with self.lock:
            elapsed = self.elapsed_s
            rate = self.documents_done / elapsed if elapsed > 0 else 0.0
            left = max(0, self.files - self.documents_done)
            eta = 0.0 if self.state != "running" else (round(left / rate, 1) if rate > 0 else None)
            return {
                "job": self.id, "collection": self.collection, "path": self.path, "state": self.state,
                "files": self.files, "documents_done": self.documents_done, "added": self.added,
                "replaced": self.replaced, "unchanged": self.unchanged, "chunks": self.chunks,
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
              on_progress: Callable[[IndexJob], None] | None = None) -> IndexJob:  # fmt: skip
        """Start indexing in a worker thread; returns at once."""
        job = IndexJob(id=uuid.uuid4().hex[:12], collection=collection, path=path)
        thread = threading.Thread(target=self._run, args=(job, reader, on_progress), name=f"diver-index-{job.id}",
                                  daemon=True)  # fmt: skip
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
        finished = [j for j in self._jobs.values() if j.state != "running"]
        for job in sorted(finished, key=lambda j: j.finished or 0)[: max(0, len(finished) - MAX_FINISHED)]:
            self._jobs.pop(job.id, None)
            self._threads.pop(job.id, None)

    def _run(self, job: IndexJob, reader: Reader, on_progress: Callable[[IndexJob], None] | None) -> None:
        try:
            docs, skipped = reader()
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
            final = "cancelled" if job.cancel_event.is_set() and job.documents_done < job.files else "done"
        except DiverError as exc:
            with job.lock:
                job._error(f"failed: {exc}")
            final = "failed"
        except Exception as exc:  # noqa: BLE001 - a worker thread must record, not lose, an unexpected error
            log.exception("indexing job %s crashed", job.id)
            with job.lock:
                job._error(f"failed: {type(exc).__name__}: {exc}")
            final = "failed"
        with job.lock:
            job.state = final
            job.finished = time.monotonic()
        job.done_event.set()
        if on_progress is not None:
            on_progress(job)


def _batches(items: Sequence[Document] | Iterable[Document], size: int) -> Iterable[list[Document]]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]
