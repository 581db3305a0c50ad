"""Clients of a data directory's engine process: ``open_engine``, ``RemoteEngine``, ``RemoteCollection``.

A client finds the engine through ``<data_dir>/engine.sock``; when nothing answers there it starts one
(``python -m diver.service``, detached, one start at a time under ``engine.spawn.lock``), after removing
the socket and pid files a dead engine left behind. A connection lost mid-call (the engine was killed)
is retried once on a fresh engine: every operation is idempotent (an upsert of committed documents finds
them unchanged), so the retry completes the call.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from diver.config import DiverSettings, load_settings
from diver.documents import Document
from diver.errors import DiverError, EngineUnavailable, IndexLocked
from diver.hits import CollectionInfo, IndexReport, SearchMode, SearchResult
from diver.service import protocol

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int | None], None]
BATCH_BYTES = 32 << 20
"""Upserts are sent in batches of at most ``store.write_batch_size`` documents and about this many bytes."""
ENGINE_ERROR_PREFIX = "DIVER_ENGINE_ERROR "
_SPAWNED: list[subprocess.Popen[bytes]] = []


def open_engine(settings: DiverSettings | None = None) -> Any:
    """The data directory's engine: a ``RemoteEngine`` (shared engine process, started if needed) or, with
    ``engine.mode = "local"``, an in-process ``diver.engine.Engine`` holding the directory's lock."""
    settings = settings or load_settings()
    if settings.engine.mode == "local":
        from diver.engine import Engine

        return Engine(settings)
    return RemoteEngine(settings)


class RemoteEmbedder:
    """The engine's embedder as seen by a client: its id, size, and query embedding (done by the engine)."""

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine

    @property
    def id(self) -> str:
        return str(self._engine.engine_status["embedder"])

    @property
    def dimensions(self) -> int:
        return int(self._engine.engine_status["dimensions"])

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._engine.call("embed_queries", texts=list(texts)), dtype=np.float32)


class RemoteEngine:
    """``Engine``'s interface over the engine process of ``settings.data_dir`` (thread-safe)."""

    def __init__(self, settings: DiverSettings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.engine_status: dict[str, Any] = {}
        self._pool: list[socket.socket] = []
        self._guard = threading.Lock()
        self._collections: dict[str, RemoteCollection] = {}
        self._closed = False
        self._checkin(self._connect())

    # -- transport --------------------------------------------------------------------------------
    def call(self, op: str, **args: Any) -> Any:
        """Run ``op`` in the engine; a lost connection is retried once on a fresh (restarted) engine."""
        for attempt in (1, 2):
            conn = self._checkout()
            try:
                protocol.send_frame(conn, {"op": op, "args": args})
                reply = protocol.recv_frame(conn)
                if reply is None:
                    raise protocol.ConnectionLost("the engine closed the connection")
            except OSError as exc:
                conn.close()
                self._drop_pool()
                if attempt == 2:
                    raise EngineUnavailable(
                        f"the engine of {self.data_dir} went away during {op} twice ({exc}); "
                        f"see {self.data_dir / 'engine.log'}"
                    ) from exc
                log.warning("engine connection lost during %s (%s); reconnecting", op, exc)
                continue
            self._checkin(conn)
            if "error" in reply:
                raise protocol.error_from_payload(reply["error"])
            return reply.get("ok")
        raise AssertionError("unreachable")

    def _checkout(self) -> socket.socket:
        with self._guard:
            if self._closed:
                raise EngineUnavailable("this engine client is closed")
            if self._pool:
                return self._pool.pop()
        return self._connect()

    def _checkin(self, conn: socket.socket) -> None:
        with self._guard:
            if not self._closed:
                self._pool.append(conn)
                return
        conn.close()

    def _drop_pool(self) -> None:
        with self._guard:
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()

    def _connect(self) -> socket.socket:
        """A new connection that passed ``hello``; an engine dying while we connect is retried (a socket
        can accept a connection in the instant before its process is gone)."""
        error: OSError | None = None
        for _ in range(3):
            conn = _try_connect(protocol.socket_path(self.data_dir)) or start_engine(self.settings)
            try:
                protocol.send_frame(conn, {"op": "hello", "args": {
                    "version": protocol.PROTOCOL_VERSION, "pid": os.getpid(),
                    "sections": protocol.index_sections(self.settings)}})  # fmt: skip
                reply = protocol.recv_frame(conn)
                if reply is None:
                    raise protocol.ConnectionLost("the engine closed the connection on hello")
            except OSError as exc:
                conn.close()
                error = exc
                time.sleep(0.2)
                continue
            if "error" in reply:
                conn.close()
                raise protocol.error_from_payload(reply["error"])
            self.engine_status = reply["ok"]
            return conn
        raise EngineUnavailable(f"the engine of {self.data_dir} did not answer: {error}")

    # -- Engine's interface -----------------------------------------------------------------------
    @property
    def embedder(self) -> RemoteEmbedder:
        return RemoteEmbedder(self)

    def status(self) -> dict[str, Any]:
        """The engine process: pid, embedder, embedder_loads, clients_seen, connections, requests."""
        self.engine_status = self.call("status")
        return self.engine_status

    def collection_names(self) -> list[str]:
        return list(self.call("collection_names"))

    def list_collections(self) -> list[CollectionInfo]:
        return [CollectionInfo.model_validate(i) for i in self.call("list_collections")]

    def collection(self, name: str, create: bool = False) -> RemoteCollection:
        with self._guard:
            cached = self._collections.get(name)
        if cached is not None:
            return cached
        self.call("open", collection=name, create=create)
        with self._guard:
            return self._collections.setdefault(name, RemoteCollection(self, name))

    def drop(self, name: str) -> None:
        self.call("drop", collection=name)
        with self._guard:
            self._collections.pop(name, None)

    def stop_engine(self) -> None:
        """Ask the engine process to exit (after the requests in flight)."""
        self.call("stop")
        self.close()

    def close(self) -> None:
        with self._guard:
            self._closed = True
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteCollection:
    """``Collection``'s interface (reads, writes, search) over the engine process."""

    def __init__(self, engine: RemoteEngine, name: str) -> None:
        self.engine = engine
        self.name = name

    def _call(self, op: str, **args: Any) -> Any:
        return self.engine.call(op, collection=self.name, **args)

    def info(self) -> CollectionInfo:
        return CollectionInfo.model_validate(self._call("info"))

    def get(self, doc_id: str) -> Document:
        return Document.model_validate(self._call("get", doc_id=doc_id))

    def upsert(
        self,
        documents: Iterable[Document],
        progress: bool = False,
        total: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> IndexReport:
        """Add or replace documents by id, in batches; each batch is committed atomically by the engine."""
        started = time.perf_counter()
        report = IndexReport(collection=self.name)
        seen: set[str] = set()
        bar = _progress_bar(total, f"indexing {self.name}") if progress else None
        for batch in _batches(documents, self.engine.settings.store.write_batch_size):
            for doc_id in {d.id for d in batch} & seen:
                if doc_id not in report.duplicate_ids:
                    report.duplicate_ids.append(doc_id)
            seen.update(d.id for d in batch)
            part = IndexReport.model_validate(self._call("upsert", documents=[d.model_dump() for d in batch]))
            report.added += part.added
            report.replaced += part.replaced
            report.unchanged += part.unchanged
            report.chunks += part.chunks
            report.duplicate_ids.extend(i for i in part.duplicate_ids if i not in report.duplicate_ids)
            if bar is not None:
                bar.update(len(batch))
            if on_progress is not None:
                on_progress(report.added + report.replaced + report.unchanged, total)
        if bar is not None:
            bar.close()
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def delete(self, ids: Sequence[str]) -> int:
        return int(self._call("delete", ids=list(ids)))

    def search(self, query: str, k: int = 10, mode: SearchMode = "hybrid", where: dict[str, Any] | None = None,
               source: str | None = None) -> SearchResult:  # fmt: skip
        return self.search_many([query], k=k, mode=mode, where=where, source=source)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, mode: SearchMode = "hybrid",
                    exclude: Sequence[set[str]] | None = None, where: dict[str, Any] | None = None,
                    source: str | None = None) -> list[SearchResult]:  # fmt: skip
        args: dict[str, Any] = {
            "queries": list(queries),
            "k": k,
            "mode": mode,
            "where": where,
            "source": source,
        }
        if exclude is not None:
            args["exclude"] = [sorted(ids) for ids in exclude]
        return [SearchResult.model_validate(r) for r in self._call("search_many", **args)]

    def chunk_window(
        self, doc_id: str, around_chunk: int, window: int = 1
    ) -> list[tuple[int, int, int, str]]:
        rows = self._call("chunk_window", doc_id=doc_id, around_chunk=around_chunk, window=window)
        return [(int(i), int(s), int(e), str(t)) for i, s, e, t in rows]

    def chunk_count(self, doc_id: str) -> int:
        return int(self._call("chunk_count", doc_id=doc_id))

    def warm(self) -> None:
        self._call("warm")


# -- finding and starting the engine ----------------------------------------------------------------
def _try_connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        conn.close()
        return None
    except OSError as exc:
        conn.close()
        raise EngineUnavailable(f"cannot connect to the engine socket {path}: {exc}") from exc
    return conn


def start_engine(settings: DiverSettings) -> socket.socket:
    """Connect to the data directory's engine, starting it (and cleaning a dead one's files) if needed."""
    from filelock import FileLock, Timeout

    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    path = protocol.socket_path(data_dir)
    timeout = settings.engine.start_timeout_s
    try:
        with FileLock(str(data_dir / "engine.spawn.lock"), timeout=timeout):
            conn = _try_connect(path)
            if conn is not None:
                return conn
            clean_stale_files(data_dir)
            _refuse_if_local_owner(data_dir)
            return _spawn_and_connect(settings, data_dir, path, timeout)
    except Timeout as exc:
        raise EngineUnavailable(
            f"another process has been starting the engine of {data_dir} for {timeout}s"
        ) from exc


def clean_stale_files(data_dir: Path) -> bool:
    """Remove the socket and pid file of an engine that is gone (kill -9, crash). True if removed."""
    path, pid = protocol.socket_path(data_dir), protocol.read_pid(data_dir)
    if pid is not None and protocol.pid_alive(pid):
        return False  # alive but not answering: exiting; the next engine replaces its socket
    removed = False
    for stale in (path, protocol.pid_path(data_dir)):
        if stale.exists() or stale.is_symlink():
            stale.unlink(missing_ok=True)
            removed = True
    if removed:
        log.warning("removed the socket/pid files of a dead engine (pid %s) in %s", pid, data_dir)
    return removed


def _refuse_if_local_owner(data_dir: Path) -> None:
    """A process with ``engine.mode = "local"`` holds the directory: say so now instead of starting an
    engine that could not get the lock."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(data_dir / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        owner = _read(data_dir / ".lock.owner").strip() or "?"
        if protocol.ENGINE_OWNER_TAG in owner:
            return  # an engine still exiting: the new one waits for the lock
        raise IndexLocked(
            f"data directory {data_dir} is in use by another DIVER process ({owner}) that opened it with "
            "engine.mode = 'local'; stop it, use its MCP tools, or point DIVER_DATA_DIR elsewhere"
        ) from exc
    lock.release()


def _spawn_and_connect(settings: DiverSettings, data_dir: Path, path: Path, timeout: float) -> socket.socket:
    for proc in list(_SPAWNED):  # reap engines this process started that have exited since
        if proc.poll() is not None:
            _SPAWNED.remove(proc)
    log_path = data_dir / "engine.log"
    if log_path.exists() and log_path.stat().st_size > 10 << 20:
        log_path.replace(data_dir / "engine.log.1")
    offset = log_path.stat().st_size if log_path.exists() else 0
    payload = protocol.settings_payload(settings)
    payload["data_dir"] = str(data_dir)
    payload["cache_dir"] = str(settings.resolved_cache_dir.resolve())
    with log_path.open("ab") as sink:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "diver.service"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=sink, cwd=str(data_dir), start_new_session=True,
        )  # fmt: skip
    _SPAWNED.append(proc)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(payload).encode("utf-8"))
    proc.stdin.close()
    log.info("started the DIVER engine for %s (pid %d)", data_dir, proc.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = _try_connect(path)
        if conn is not None:
            return conn
        if proc.poll() is not None:
            raise _startup_error(log_path, offset, proc.returncode, data_dir)
        time.sleep(0.05)
    raise EngineUnavailable(f"the engine of {data_dir} did not start within {timeout}s; see {log_path}")


def _startup_error(log_path: Path, offset: int, code: int, data_dir: Path) -> DiverError:
    with log_path.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", "replace")
    for line in reversed(text.splitlines()):
        if line.startswith(ENGINE_ERROR_PREFIX):
            return protocol.error_from_payload(json.loads(line[len(ENGINE_ERROR_PREFIX) :]))
    return EngineUnavailable(f"the engine of {data_dir} exited with {code} while starting: {text[-1500:]}")


def release_idle_engine(data_dir: Path) -> bool | None:
    """Ask the shared engine to hand the directory to a local ``Engine``: True if it will exit, False if it
    refuses (other clients are connected), None if no engine answers (starting or exiting)."""
    conn = _try_connect(protocol.socket_path(data_dir.resolve()))
    if conn is None:
        return None
    try:
        protocol.send_frame(conn, {"op": "release", "args": {}})
        reply = protocol.recv_frame(conn)
    except OSError:
        return None
    finally:
        conn.close()
    if not reply or "ok" not in reply:
        return None
    return bool(reply["ok"].get("released"))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def _batches(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    used = 0
    for doc in documents:
        cost = len(doc.text) + len(doc.id) + 64
        if batch and (len(batch) >= size or used + cost > BATCH_BYTES):
            yield batch
            batch, used = [], 0
        batch.append(doc)
        used += cost
    if batch:
        yield batch


def _progress_bar(total: int | None, description: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="doc", file=sys.stderr, disable=not sys.stderr.isatty())
