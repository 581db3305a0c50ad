"""Clients of a data directory's engine process: ``open_engine``, ``RemoteEngine``, ``RemoteCollection``.

A client finds the engine through ``<data_dir>/engine.sock``; when nothing answers there it starts one
(``python -m diver.service``, detached, one start at a time under ``engine.spawn.lock``), after removing
the socket and pid files a dead engine left behind. A connection lost mid-call (the engine was killed)
is retried once on a fresh engine: every operation is idempotent (an upsert of committed documents finds
them unchanged), so the retry completes the call.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from diver.config import DiverSettings, load_settings
from diver.errors import EngineUnavailable, EngineUnresponsive
from diver.hits import CollectionInfo, IndexReport, SearchMode, SearchResult
from diver.index.upserts import ProgressCallback, UpsertRun, document_batches
from diver.service import protocol
from diver.service.spawn import start_engine, try_connect
from diver.text.documents import Document, check_limits

log = logging.getLogger(__name__)
BATCH_BYTES = protocol.BATCH_BYTES


def open_engine(settings: DiverSettings | None = None) -> Any:
    """The data directory's engine: a ``RemoteEngine`` (shared engine process, started if needed) or, with
    ``engine.mode = "local"``, an in-process ``diver.index.engine.Engine`` holding the directory's lock."""
    settings = settings or load_settings()
    if settings.engine.mode == "local":
        return local_engine(settings)
    return RemoteEngine(settings)


def local_engine(settings: DiverSettings | None = None, embedder: Any = None) -> Any:
    """An in-process ``diver.index.engine.Engine`` holding the data directory's lock; an idle shared engine
    process that holds it is asked to hand it over (one with clients keeps it: ``IndexLocked``)."""
    from functools import partial

    from diver.index.engine import Engine
    from diver.service.spawn import take_over_idle_engine

    settings = settings or load_settings()
    hand_over = partial(take_over_idle_engine, timeout=settings.engine.request_timeout_s)
    return Engine(settings, embedder=embedder, on_locked=hand_over)


def unresponsive(data_dir: Any, op: str, timeout: float) -> EngineUnresponsive:
    """The error for an engine that holds its connection but sends nothing: its pid and what to do."""
    pid = protocol.read_pid(data_dir)
    who = f"pid {pid}" if pid is not None else "pid unknown"
    return EngineUnresponsive(
        f"the engine of {data_dir} ({who}) sent nothing for {timeout:g}s during {op}: it is stopped or hung. "
        f"If it was suspended, resume it (`kill -CONT {pid}`); otherwise end it (`kill {pid}`; the next "
        f"client starts a fresh one). See {data_dir}/engine.log; engine.request_timeout_s sets this limit"
    )


def _wire_size(doc: Document) -> int:
    """About the bytes ``doc`` takes in a request frame (its JSON, as ``send_frame`` encodes it)."""
    return len(protocol.encode(doc.model_dump())) + 2


class RemoteEmbedder:
    """The engine's embedder as seen by a client: its id, size, and query embedding (done by the engine)."""

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine
        self._budget: int | None = None

    @property
    def id(self) -> str:
        return str(self._engine.engine_status["embedder"])

    @property
    def dimensions(self) -> int:
        return int(self._engine.engine_status["dimensions"])

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._engine.call("embed_queries", texts=list(texts)), dtype=np.float32)

    @property
    def spanner(self) -> _RemoteSpanner:
        """The engine embedder's tokenizer (its spans), e.g. for whether a query fits the model's window."""
        return _RemoteSpanner(self._engine)

    def chunk_token_budget(self) -> int | None:
        if self._budget is None:
            self._budget = self._engine.call("chunk_token_budget")
        return self._budget


class _RemoteSpanner:
    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        [spans] = self._engine.call("token_spans", texts=[text])
        return [(int(a), int(b)) for a, b in spans]


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
        """Run ``op`` in the engine; a lost connection is retried once on a fresh (restarted) engine. An
        engine that keeps the connection but sends nothing (not even progress frames) for
        ``engine.request_timeout_s`` raises ``EngineUnresponsive``."""
        for attempt in (1, 2):
            conn = self._checkout()
            try:
                reply = self._exchange(conn, op, args)
            except TimeoutError as exc:
                conn.close()
                self._drop_pool()
                raise unresponsive(self.data_dir, op, self.settings.engine.request_timeout_s) from exc
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

    def _exchange(self, conn: socket.socket, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its reply, skipping the engine's progress frames."""
        conn.settimeout(self.settings.engine.request_timeout_s)
        protocol.send_frame(conn, {"op": op, "args": args})
        while True:
            reply = protocol.recv_frame(conn)
            if reply is None:
                raise protocol.ConnectionLost("the engine closed the connection")
            if "progress" not in reply:
                return reply

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
        timeout = self.settings.engine.request_timeout_s
        for _ in range(3):
            conn = try_connect(protocol.socket_path(self.data_dir), timeout) or start_engine(self.settings)
            try:
                reply = self._exchange(conn, "hello", {
                    "version": protocol.PROTOCOL_VERSION, "pid": os.getpid(),
                    "sections": protocol.index_sections(self.settings)})  # fmt: skip
            except TimeoutError as exc:
                conn.close()
                raise unresponsive(self.data_dir, "hello", timeout) from exc
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
        run = UpsertRun(self.name, total, progress, on_progress)
        settings = self.engine.settings
        try:
            for batch in document_batches(documents, settings.store.write_batch_size, BATCH_BYTES, _wire_size):
                for doc in batch:  # refused here as the engine would: a clear error, no oversized frame
                    check_limits(doc, settings.limits.max_document_bytes, settings.limits.max_metadata_bytes)
                unique = run.unique(batch)
                run.add(IndexReport.model_validate(self._call("upsert", documents=[d.model_dump() for d in unique])))
                run.advance(len(batch))
        finally:
            run.close()
        return run.finish()

    def delete(self, ids: Sequence[str]) -> int:
        return int(self._call("delete", ids=list(ids)))

    def move(self, moves: Sequence[tuple[str, Document]]) -> IndexReport:
        """Renamed documents (same text, new id): their vectors are copied by the engine, not re-embedded."""
        run = UpsertRun(self.name, len(moves))
        size = self.engine.settings.store.write_batch_size
        for start in range(0, len(moves), size):
            part = [[old, doc.model_dump()] for old, doc in moves[start : start + size]]
            run.add(IndexReport.model_validate(self._call("move", moves=part)))
        return run.finish()

    def folder_documents(self, root: str) -> dict[str, tuple[str, str | None]]:
        rows = self._call("folder_documents", root=root)
        return {i: (str(h), p if isinstance(p, str) else None) for i, (h, p) in rows.items()}

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
