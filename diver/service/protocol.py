"""The engine service's wire format and its files in the data directory.

One request or reply is a frame: 8 bytes big-endian length, then that many bytes of UTF-8 JSON.
Request ``{"op": name, "args": {...}}``; reply ``{"ok": value}`` or ``{"error": {"type", "message"}}``
where ``type`` names a class of ``diver.errors`` (the client raises that class again). While a request
runs the engine sends ``{"progress": {"op", "elapsed_s"}}`` frames every ``PROGRESS_INTERVAL_S``: the
client counts them as signs of life and times out only on silence (a stopped or hung engine).

Who may talk: the first request of a connection must be ``hello``; both ends check that the peer runs
as the same user (``SO_PEERCRED``); the socket folder must be the user's own and closed to others.

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
import stat
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from diver import errors
from diver.config import DiverSettings

HEADER = struct.Struct(">Q")
MAX_FRAME = 1 << 30
"""Largest reply a client accepts (1 GiB); what the engine accepts is bounded by ``frame_limit``."""
PROTOCOL_VERSION = 2
BATCH_BYTES = 32 << 20
"""Clients send upserts in batches of at most ``store.write_batch_size`` documents and about this many
bytes of JSON (one larger document travels alone)."""
PROGRESS_INTERVAL_S = 2.0
"""The engine sends a progress frame this often while a request runs (liveness for the client)."""
ENGINE_OWNER_TAG = "(diver engine)"
"""Written after the pid in ``.lock.owner`` by the engine process: the lock belongs to the shared engine."""
INDEX_SECTIONS = ("cache_dir", "embedding", "chunking", "bm25", "store", "fusion", "limits")
"""Settings the engine process applies to every client: a client with other values is refused."""
MAX_UNIX_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


class ConnectionLost(OSError):
    """The engine closed the connection (it exited or was killed) before replying."""


class BadFrame(ValueError):
    """A frame that is too large, not JSON, nested too deeply, or not an object: the connection is closed."""


def socket_path(data_dir: Path) -> Path:
    """``<data_dir>/engine.sock``, or a per-user path under the temp dir named by a hash of the data dir.

    The temp-dir folder must be a real directory owned by this user with no group/other permissions: one
    another user created first (to receive our documents and answer our searches) is refused."""
    path = data_dir.resolve() / "engine.sock"
    if len(os.fsencode(str(path))) <= MAX_UNIX_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(str(data_dir.resolve()))).hexdigest()[:20]
    folder = Path(tempfile.gettempdir()) / f"diver-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    check_private_dir(folder)
    return folder / f"{digest}.sock"


def check_private_dir(folder: Path) -> None:
    """Refuse ``folder`` unless it is a directory (not a symlink) owned by us, closed to group and other."""
    info = os.lstat(folder)
    problem = ""
    if not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory (a symlink or file)"
    elif info.st_uid != os.getuid():
        problem = f"is owned by uid {info.st_uid}, not by this user (uid {os.getuid()})"
    elif info.st_mode & 0o077:
        problem = f"has mode {stat.S_IMODE(info.st_mode):o}: group/other may enter it"
    if problem:
        raise errors.UnsafePath(
            f"refusing the engine socket folder {folder}: it {problem}. Another user may have created it to "
            f"intercept this engine; remove it (or set TMPDIR to a private folder) and retry"
        )


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket."""
    if hasattr(socket, "SO_PEERCRED"):  # Linux: struct ucred {pid, uid, gid}
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", raw)[1])
    if sys.platform == "darwin":  # LOCAL_PEERCRED (SOL_LOCAL=0, 1): struct xucred {version, uid, ...}
        raw = sock.getsockopt(0, 1, 76)
        return int(struct.unpack("2I", raw[:8])[1])
    raise errors.UnsafePath(f"cannot check the engine socket's peer on {sys.platform}")


def check_peer(sock: socket.socket, what: str) -> None:
    """Refuse a peer running as another user (``what`` names it in the message)."""
    uid = peer_uid(sock)
    if uid != os.getuid():
        raise errors.UnsafePath(
            f"the {what} at the other end of the engine socket runs as uid {uid}, not as this user "
            f"(uid {os.getuid()}): refused"
        )


def frame_limit(max_document_bytes: int, max_metadata_bytes: int) -> int:
    """The largest request the engine reads: a write batch (``BATCH_BYTES`` of JSON, or one document of the
    configured limits, JSON-escaped up to 6 bytes per byte of UTF-8), with room for the frame's own keys."""
    one_document = 6 * (max_document_bytes + max_metadata_bytes) + 4096
    return max(BATCH_BYTES, one_document) + (1 << 20)


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


def encode(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")


def send_frame(sock: socket.socket, message: dict[str, Any]) -> None:
    data = encode(message)
    sock.sendall(HEADER.pack(len(data)) + data)


def recv_frame(
    sock: socket.socket, limit: int = MAX_FRAME, body_timeout: float | None = None
) -> dict[str, Any] | None:
    """The next frame, or None when the peer closed the connection cleanly between frames.

    The header is awaited under the socket's own timeout; once it has come, the body must follow within
    ``body_timeout`` seconds (a header with no body must not hold a connection forever)."""
    header = _recv_exact(sock, HEADER.size, allow_eof=True)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > limit:
        raise BadFrame(f"frame of {size} bytes refused (limit {limit})")
    if body_timeout is not None:
        sock.settimeout(body_timeout)
    body = _recv_exact(sock, size, allow_eof=False)
    assert body is not None
    try:
        message = json.loads(body.decode("utf-8"))
    except RecursionError as exc:
        raise BadFrame("frame nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise BadFrame(f"frame is not UTF-8: {exc}") from exc
    if not isinstance(message, dict):
        raise BadFrame("frame is not a JSON object")
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
