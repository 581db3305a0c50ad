"""The engine service's wire format and its files in the data directory.

One request or reply is a frame: 8 bytes big-endian length, then that many bytes of UTF-8 JSON.
Request ``{"op": name, "args": {...}}``; reply ``{"ok": value}`` or ``{"error": {"type", "message"}}``
where ``type`` names a class of ``diver.errors`` (the client raises that class again).

Files (all in the data directory, next to ``.lock`` which the engine holds through ``Engine``)::

    engine.sock     the Unix socket (or a path under /tmp when the data dir's path is too long for one)
    engine.pid      pid of the engine process that bound the socket (stale when that pid is gone)
    engine.spawn.lock   taken by a client while it starts an engine (one start at a time)
    engine.log      the engine's stderr (model loading, warnings, crash tracebacks)
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from diver import errors
from diver.config import DiverSettings

HEADER = struct.Struct(">Q")
MAX_FRAME = 1 << 31  # 2 GiB: a batch of documents is bounded far below (limits.max_document_bytes x batch)
PROTOCOL_VERSION = 1
ENGINE_OWNER_TAG = "(diver engine)"
"""Written after the pid in ``.lock.owner`` by the engine process: the lock belongs to the shared engine."""
INDEX_SECTIONS = ("cache_dir", "embedding", "chunking", "bm25", "store", "fusion", "limits")
"""Settings the engine process applies to every client: a client with other values is refused."""
MAX_UNIX_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


class ConnectionLost(OSError):
    """The engine closed the connection (it exited or was killed) before replying."""


def socket_path(data_dir: Path) -> Path:
    """``<data_dir>/engine.sock``, or a per-user path under the temp dir named by a hash of the data dir."""
    path = data_dir.resolve() / "engine.sock"
    if len(os.fsencode(str(path))) <= MAX_UNIX_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(str(data_dir.resolve()))).hexdigest()[:20]
    folder = Path(tempfile.gettempdir()) / f"diver-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{digest}.sock"


def pid_path(data_dir: Path) -> Path:
    return data_dir / "engine.pid"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process holds that pid: alive, not ours to judge
    return True


def read_pid(data_dir: Path) -> int | None:
    try:
        return int(pid_path(data_dir).read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def send_frame(sock: socket.socket, message: dict[str, Any]) -> None:
    data = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
    sock.sendall(HEADER.pack(len(data)) + data)


def recv_frame(sock: socket.socket) -> dict[str, Any] | None:
    """The next frame, or None when the peer closed the connection cleanly between frames."""
    header = _recv_exact(sock, HEADER.size, allow_eof=True)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ConnectionLost(f"frame of {size} bytes refused")
    body = _recv_exact(sock, size, allow_eof=False)
    assert body is not None
    message = json.loads(body.decode("utf-8"))
    if not isinstance(message, dict):
        raise ConnectionLost("frame is not a JSON object")
    return message


def _recv_exact(sock: socket.socket, size: int, allow_eof: bool) -> bytes | None:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            if allow_eof and remaining == size:
                return None
            raise ConnectionLost("the engine closed the connection mid-frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def error_payload(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


def error_from_payload(payload: dict[str, Any]) -> errors.DiverError:
    """The ``diver.errors`` class named in a reply, with the engine's message (StateError if unknown)."""
    cls = getattr(errors, str(payload.get("type", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.DiverError)):
        cls = errors.StateError
    exc = cls.__new__(cls)  # subclasses with their own __init__ (CollectionNotFound) keep the engine's text
    Exception.__init__(exc, str(payload.get("message", "engine error")))
    return exc


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {k: _plain(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def settings_payload(settings: DiverSettings) -> dict[str, Any]:
    """Every setting, secrets included (handed to the engine process through a pipe, never a file)."""
    payload: dict[str, Any] = _plain(settings)  # a BaseModel: _plain gives a dict
    return payload


def index_sections(settings: DiverSettings) -> dict[str, Any]:
    """The sections the engine applies for every client (secrets masked: compared, never sent)."""
    dumped = settings.model_dump(mode="json", include=set(INDEX_SECTIONS))
    if dumped.get("cache_dir") is None:
        dumped["cache_dir"] = str(settings.resolved_cache_dir)
    return dumped
