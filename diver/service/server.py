"""The engine process of one data directory: owns the ``Engine`` (lock, model, indexes), serves clients.

Started by the first client (``python -m diver.service``, settings on stdin), it listens on a Unix socket
in the data directory. Each connection gets a thread: reads run concurrently, writes serialize on the
collections' write locks. It exits ``engine.idle_timeout_s`` after its last client disconnected, when
told to stop, or when a local ``Engine`` asks for the directory and no other client is connected.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from diver.config import DiverSettings
from diver.errors import DiverError, EngineSettingsMismatch, IndexLocked
from diver.index.engine import Engine
from diver.service import protocol
from diver.service.connections import close as _close
from diver.service.connections import peer_gone as _peer_gone
from diver.service.connections import refusal as _refusal
from diver.text.documents import Document

log = logging.getLogger("diver.service")
LOCK_WAIT_S = 20.0
"""A new engine waits this long for the data-directory lock (an idle engine may still be exiting)."""
HELLO_TIMEOUT_S = 10.0
"""A connection must say ``hello`` within this time (a silent one must not keep an idle engine alive)."""
BODY_TIMEOUT_S = 30.0
"""Once a frame's header has come, its body must follow within this time."""
SEND_TIMEOUT_S = 60.0
"""A reply or progress frame that a client does not take within this time ends its connection."""


class EngineService:
    def __init__(self, settings: DiverSettings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.engine = _open_engine(settings)
        self.sections = protocol.index_sections(settings)
        self.embedder_loads = 0
        self.started = time.time()
        self._guard = threading.Lock()
        self._idle = threading.Condition(self._guard)
        self._connections: dict[int, socket.socket] = {}
        self._in_flight = 0
        self._last_active = time.monotonic()
        self._closing = threading.Event()
        self._clients: set[int] = set()
        self._requests = 0
        self._listener: socket.socket | None = None
        self._busy: dict[int, tuple[socket.socket, threading.Lock, str, float]] = {}
        self.frame_limit = protocol.frame_limit(
            settings.limits.max_document_bytes, settings.limits.max_metadata_bytes
        )
        self.path = protocol.socket_path(self.data_dir)

    # -- lifecycle --------------------------------------------------------------------------------
    def load(self) -> None:
        """Load the embedding model once, for every client of this data directory."""
        embedder = self.engine.embedder
        self.embedder_loads += 1
        embedder.embed_queries(["warm-up"])
        log.info("engine %d: embedder %s loaded", os.getpid(), embedder.id)

    def bind(self) -> None:
        """Replace a stale socket (we hold the lock: its engine is gone) and listen."""
        if self.path.exists() or self.path.is_symlink():
            log.warning("removing a stale engine socket %s", self.path)
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is the user's alone
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old_umask)
        listener.listen(64)
        listener.settimeout(0.5)
        self._listener = listener
        protocol.pid_path(self.data_dir).write_text(f"{os.getpid()}\n", encoding="utf-8")

    def serve(self) -> None:
        assert self._listener is not None
        watcher = threading.Thread(target=self._watch_idle, name="diver-engine-idle", daemon=True)
        watcher.start()
        threading.Thread(target=self._send_progress, name="diver-engine-progress", daemon=True).start()
        log.info("engine %d serving %s on %s", os.getpid(), self.data_dir, self.path)
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._closing.is_set():
                    break
                raise DiverError(f"engine socket failed: {exc}") from exc
            threading.Thread(target=self._handle, args=(conn,), name="diver-engine-conn", daemon=True).start()
        self._shutdown()

    def _shutdown(self) -> None:
        assert self._listener is not None
        self._listener.close()
        if protocol.read_pid(self.data_dir) == os.getpid():
            protocol.pid_path(self.data_dir).unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)
        with self._idle:  # finish the requests in flight (a write batch commits or is rolled back whole)
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=600)
            for conn in self._connections.values():
                _close(conn)
        self.engine.close()
        log.info("engine %d stopped", os.getpid())

    def stop(self) -> None:
        self._closing.set()

    def _watch_idle(self) -> None:
        timeout = self.settings.engine.idle_timeout_s
        while not self._closing.wait(min(1.0, timeout / 4)):
            with self._guard:
                idle = not self._connections and time.monotonic() - self._last_active > timeout
            if idle:
                log.info("engine %d: no client for %.0fs, exiting", os.getpid(), timeout)
                self.stop()

    # -- connections ------------------------------------------------------------------------------
    def _handle(self, conn: socket.socket) -> None:
        try:
            protocol.check_peer(conn, "client")
        except (DiverError, OSError) as exc:
            log.warning("refused a connection: %s", exc)
            _close(conn)
            return
        key = id(conn)
        with self._guard:
            self._connections[key] = conn
        try:
            self._serve_connection(key, conn)
        finally:
            with self._guard:
                self._connections.pop(key, None)
                self._last_active = time.monotonic()
            _close(conn)

    def _serve_connection(self, key: int, conn: socket.socket) -> None:
        """Frames until the client leaves: ``hello`` first (within ``HELLO_TIMEOUT_S``), then requests."""
        sender = threading.Lock()
        greeted: str | None = None  # "client" (settings compared) or "control" (status/stop/release)
        conn.settimeout(HELLO_TIMEOUT_S)
        while not self._closing.is_set():
            try:
                request = protocol.recv_frame(conn, self.frame_limit, BODY_TIMEOUT_S)
            except protocol.BadFrame as exc:
                log.warning("closing a connection that sent a bad frame: %s", exc)
                return
            except OSError:
                return  # gone, silent before hello, or a header without its body
            if request is None:
                return
            conn.settimeout(SEND_TIMEOUT_S)
            op = str(request.get("op", ""))
            refusal = _refusal(op, greeted)
            reply = refusal or self._run(key, conn, sender, op, request)
            if op == "hello" and "ok" in reply:
                greeted = "control" if (request.get("args") or {}).get("sections") is None else "client"
            try:
                with sender:
                    protocol.send_frame(conn, reply)
            except OSError:
                return  # the client died waiting: what was done is committed and stays
            if refusal is not None:
                return
            conn.settimeout(None if greeted else HELLO_TIMEOUT_S)

    def _run(
        self, key: int, conn: socket.socket, sender: threading.Lock, op: str, request: dict[str, Any]
    ) -> dict[str, Any]:
        with self._guard:
            self._in_flight += 1
            self._requests += 1
            self._busy[key] = (conn, sender, op, time.monotonic())
        try:
            return self._dispatch(request, conn)
        finally:
            with self._idle:
                self._busy.pop(key, None)
                self._in_flight -= 1
                self._last_active = time.monotonic()
                self._idle.notify_all()

    def _send_progress(self) -> None:
        """Every ``PROGRESS_INTERVAL_S``, a progress frame to each client whose request is still running
        (the client's sign that the engine is alive: it times out only on silence)."""
        while not self._closing.wait(protocol.PROGRESS_INTERVAL_S):
            now = time.monotonic()
            with self._guard:
                busy = list(self._busy.items())
            for key, (conn, sender, op, started) in busy:
                if now - started < protocol.PROGRESS_INTERVAL_S / 2 or not sender.acquire(timeout=0.1):
                    continue
                try:
                    with self._guard:
                        still = self._busy.get(key, (None,))[0] is conn
                    if still:
                        protocol.send_frame(conn, {"progress": {"op": op, "elapsed_s": round(now - started, 1)}})
                except OSError:
                    log.debug("progress frame not delivered (client gone)")
                finally:
                    sender.release()

    def _dispatch(self, request: dict[str, Any], conn: socket.socket) -> dict[str, Any]:
        op = str(request.get("op", ""))
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            return {"error": {"type": "StateError", "message": f"unknown engine operation {op!r}"}}
        try:
            return {"ok": handler(conn, **(request.get("args") or {}))}
        except DiverError as exc:
            return {"error": protocol.error_payload(exc)}
        except Exception as exc:  # noqa: BLE001 - a bug or an untyped library error: logged, returned typed
            log.exception("engine operation %s failed", op)
            return {
                "error": {
                    "type": "StateError",
                    "message": f"engine error in {op}: {type(exc).__name__}: {exc}",
                }
            }

    def _live_peers(self, conn: socket.socket) -> int:
        """Connections other than ``conn`` whose client is still there (a killed client reads as EOF)."""
        with self._guard:
            others = [c for c in self._connections.values() if c is not conn]
        return sum(0 if _peer_gone(other) else 1 for other in others)

    # -- operations (op_<name>; each returns JSON-ready values) ----------------------------------
    def op_hello(
        self, conn: socket.socket, version: int, pid: int, sections: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Required first on every connection; ``sections=None`` opens a control connection."""
        if version != protocol.PROTOCOL_VERSION:
            raise EngineSettingsMismatch(
                f"the engine of {self.data_dir} speaks protocol {protocol.PROTOCOL_VERSION}, this client {version}; "
                "run `diver engine stop` and retry"
            )
        if sections is None:
            return self.op_status(conn)
        differing = sorted(k for k in protocol.INDEX_SECTIONS if sections.get(k) != self.sections.get(k))
        if differing:
            raise EngineSettingsMismatch(
                f"the engine already serving {self.data_dir} (pid {os.getpid()}) runs with other "
                f"{', '.join(differing)} settings than this process; use the same settings, stop it with "
                "`diver engine stop`, or use another DIVER_DATA_DIR"
            )
        with self._guard:
            self._clients.add(int(pid))
        return self.op_status(conn)

    def op_status(self, conn: socket.socket) -> dict[str, Any]:
        embedder = self.engine.embedder
        with self._guard:
            return {
                "pid": os.getpid(), "data_dir": str(self.data_dir), "embedder": embedder.id,
                "dimensions": embedder.dimensions, "embedder_loads": self.embedder_loads,
                "clients_seen": sorted(self._clients), "connections": len(self._connections),
                "requests": self._requests, "uptime_s": round(time.time() - self.started, 1),
            }  # fmt: skip

    def op_stop(self, conn: socket.socket) -> bool:
        self.stop()
        return True

    def op_release(self, conn: socket.socket) -> dict[str, Any]:
        """A local ``Engine`` wants the directory: exit after the requests in flight, unless others use us.
        A request whose sender has already gone (it gave up on a stopped engine) is not carried out."""
        live = self._live_peers(conn)
        if _peer_gone(conn):
            log.warning("engine %d: ignoring a release from a client that has left", os.getpid())
            return {"released": False, "clients": live, "pid": os.getpid()}
        if live == 0:
            self.stop()
        return {"released": live == 0, "clients": live, "pid": os.getpid()}

    def op_embed_queries(self, conn: socket.socket, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.engine.embedder.embed_queries(texts).tolist()
        return vectors

    def op_token_spans(self, conn: socket.socket, texts: list[str]) -> list[list[list[int]]]:
        """The embedder's own token spans of each text (query assembly asks what fits its window)."""
        spanner = self.engine.embedder.spanner
        return [[list(span) for span in spanner.token_spans(text)] for text in texts]

    def op_chunk_token_budget(self, conn: socket.socket) -> int | None:
        embedder = self.engine.embedder
        return int(embedder.chunk_token_budget()) if hasattr(embedder, "chunk_token_budget") else None

    def op_collection_names(self, conn: socket.socket) -> list[str]:
        return self.engine.collection_names()

    def op_list_collections(self, conn: socket.socket) -> list[dict[str, Any]]:
        return [info.model_dump(mode="json") for info in self.engine.list_collections()]

    def op_open(self, conn: socket.socket, collection: str, create: bool = False) -> dict[str, Any]:
        return self.engine.collection(collection, create=create).info().model_dump(mode="json")

    def op_drop(self, conn: socket.socket, collection: str) -> None:
        self.engine.drop(collection)

    def op_info(self, conn: socket.socket, collection: str) -> dict[str, Any]:
        return self.engine.collection(collection).info().model_dump(mode="json")

    def op_upsert(
        self, conn: socket.socket, collection: str, documents: list[dict[str, Any]]
    ) -> dict[str, Any]:
        docs = [Document.model_validate(d) for d in documents]
        return self.engine.collection(collection, create=True).upsert(docs).model_dump(mode="json")

    def op_move(self, conn: socket.socket, collection: str, moves: list[list[Any]]) -> dict[str, Any]:
        pairs = [(str(old), Document.model_validate(doc)) for old, doc in moves]
        return self.engine.collection(collection).move(pairs).model_dump(mode="json")

    def op_folder_documents(self, conn: socket.socket, collection: str, root: str) -> dict[str, list[Any]]:
        return {i: list(v) for i, v in self.engine.collection(collection).folder_documents(root).items()}

    def op_delete(self, conn: socket.socket, collection: str, ids: list[str]) -> int:
        return self.engine.collection(collection).delete(ids)

    def op_get(self, conn: socket.socket, collection: str, doc_id: str) -> dict[str, Any]:
        return self.engine.collection(collection).get(doc_id).model_dump(mode="json")

    def op_search_many(
        self, conn: socket.socket, collection: str, queries: list[str], **kwargs: Any
    ) -> list[Any]:
        if kwargs.get("exclude") is not None:
            kwargs["exclude"] = [set(ids) for ids in kwargs["exclude"]]
        results = self.engine.collection(collection).search_many(queries, **kwargs)
        return [r.model_dump(mode="json") for r in results]

    def op_chunk_window(self, conn: socket.socket, collection: str, doc_id: str, around_chunk: int,
                        window: int = 1) -> list[list[Any]]:  # fmt: skip
        rows = self.engine.collection(collection).chunk_window(doc_id, around_chunk, window)
        return [list(row) for row in rows]

    def op_chunk_count(self, conn: socket.socket, collection: str, doc_id: str) -> int:
        return self.engine.collection(collection).chunk_count(doc_id)

    def op_warm(self, conn: socket.socket, collection: str) -> None:
        self.engine.collection(collection).warm()


def _open_engine(settings: DiverSettings) -> Engine:
    """The data-directory lock, waiting a little for an engine that is still exiting."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            engine = Engine(settings)
            break
        except IndexLocked:
            owner = _owner(settings.data_dir)
            if protocol.ENGINE_OWNER_TAG not in owner or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    (settings.data_dir / ".lock.owner").write_text(
        f"pid {os.getpid()} {protocol.ENGINE_OWNER_TAG}", encoding="utf-8"
    )
    return engine


def _owner(data_dir: Path) -> str:
    try:
        return (data_dir / ".lock.owner").read_text(encoding="utf-8")
    except OSError:
        return ""


def run(settings: DiverSettings) -> None:
    service = EngineService(settings)
    try:
        service.load()
        service.bind()
    except BaseException:
        service.engine.close()
        raise
    service.serve()
