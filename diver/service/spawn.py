"""Finding a data directory's engine process, starting it, and cleaning what a dead one left behind.

A client connects to ``engine.sock``; when nothing answers it takes ``engine.spawn.lock`` (one start at a
time), removes the socket and pid files of an engine whose pid is gone (kill -9, crash), refuses at once
when a process with ``engine.mode = "local"`` holds the directory, and starts ``python -m diver.service``
detached with its settings on a pipe.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from diver.config import DiverSettings
from diver.errors import DiverError, EngineUnavailable, EngineUnresponsive, IndexLocked
from diver.index.engine import private_data_dir
from diver.service import protocol

log = logging.getLogger(__name__)
ENGINE_ERROR_PREFIX = "DIVER_ENGINE_ERROR "
"""An engine that cannot start writes this, then its error as JSON, to its log (read by the spawner)."""
_SPAWNED: list[subprocess.Popen[bytes]] = []


CONNECT_TIMEOUT_S = 10.0


def try_connect(path: Path, timeout: float = CONNECT_TIMEOUT_S) -> socket.socket | None:
    """A connection to the engine socket at ``path`` (None when nothing listens there), refused
    (``UnsafePath``) when the process at the other end runs as another user."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        conn.close()
        return None
    except TimeoutError as exc:
        conn.close()
        raise EngineUnresponsive(
            f"the engine socket {path} accepted no connection within {timeout:g}s: its engine (see engine.pid "
            "in the data directory) is stopped or hung; resume it (`kill -CONT <pid>`) or end it (`kill <pid>`)"
        ) from exc
    except OSError as exc:
        conn.close()
        raise EngineUnavailable(f"cannot connect to the engine socket {path}: {exc}") from exc
    try:
        protocol.check_peer(conn, "engine")
    except BaseException:
        conn.close()
        raise
    return conn


def start_engine(settings: DiverSettings) -> socket.socket:
    """Connect to the data directory's engine, starting it (and cleaning a dead one's files) if needed."""
    from filelock import FileLock, Timeout

    data_dir = settings.data_dir.resolve()
    private_data_dir(data_dir)
    path = protocol.socket_path(data_dir)
    timeout = settings.engine.start_timeout_s
    try:
        with FileLock(str(data_dir / "engine.spawn.lock"), timeout=timeout, mode=0o600):
            conn = try_connect(path)
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

    lock = FileLock(str(data_dir / ".lock"), mode=0o600)
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
    with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as sink:
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
        conn = try_connect(path)
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


def release_idle_engine(data_dir: Path, timeout: float = 60.0) -> bool | None:
    """Ask the shared engine to hand the directory to a local ``Engine``: True if it will exit, False if it
    refuses (other clients are connected), None if no engine answers (starting or exiting). An engine that
    takes the connection but says nothing for ``timeout`` seconds raises ``EngineUnresponsive``."""
    conn = try_connect(protocol.socket_path(data_dir.resolve()), timeout)
    if conn is None:
        return None
    try:
        reply = control_request(conn, "release", timeout)
    except TimeoutError as exc:
        pid = protocol.read_pid(data_dir)
        raise EngineUnresponsive(
            f"the engine of {data_dir} (pid {pid}) sent nothing for {timeout:g}s when asked to hand over the "
            f"directory: it is stopped or hung; resume it (`kill -CONT {pid}`) or end it (`kill {pid}`)"
        ) from exc
    except OSError:
        return None
    finally:
        conn.close()
    if not reply or "ok" not in reply:
        return None
    return bool(reply["ok"].get("released"))


def control_request(conn: socket.socket, op: str, timeout: float) -> dict[str, Any] | None:
    """``hello`` as a control connection (no settings), then ``op``; its reply (progress frames skipped)."""
    conn.settimeout(timeout)
    for message in ({"op": "hello", "args": {"version": protocol.PROTOCOL_VERSION, "pid": os.getpid()}},
                    {"op": op, "args": {}}):  # fmt: skip
        protocol.send_frame(conn, message)
        reply = protocol.recv_frame(conn)
        while reply is not None and "progress" in reply:
            reply = protocol.recv_frame(conn)
        if not reply or "ok" not in reply:
            return reply
    return reply


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def take_over_idle_engine(data_dir: Path, lock: Any, timeout: float = 60.0) -> bool:
    """``Engine(on_locked=...)``: when the lock is the shared engine's and it has no other client, ask it to
    exit and take the lock (True). An engine still starting (its spawning client may have died) is asked
    once its socket answers."""
    from filelock import Timeout

    owner = data_dir / ".lock.owner"
    for _ in range(2):  # an engine writes its tag right after taking the lock: look twice
        if owner.exists() and protocol.ENGINE_OWNER_TAG in owner.read_text(encoding="utf-8"):
            break
        time.sleep(0.3)
    else:
        return False
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if release_idle_engine(data_dir, timeout) is False:
            return False  # other clients use it
        try:
            lock.acquire(timeout=1.0)  # it finishes the requests in flight, then exits
            return True
        except Timeout:
            continue
    return False
