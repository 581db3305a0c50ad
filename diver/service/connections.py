"""Small rules for the engine's connections: which request may come when, whether a client has left,
closing without fuss."""

from __future__ import annotations

import logging
import select
import socket
from typing import Any

log = logging.getLogger("diver.service")
CONTROL_OPS = frozenset({"status", "stop", "release"})
"""What a ``hello`` without settings (a control connection: ``release``, ``diver engine stop``) may ask."""


def refusal(op: str, greeted: str | None) -> dict[str, Any] | None:
    """The error reply for a request out of order: anything before ``hello``, a second ``hello``, or a
    data operation on a control connection. The connection is closed after it."""
    if greeted is None and op != "hello":
        message = f"the first request must be hello, got {op!r}"
    elif greeted is not None and op == "hello":
        message = "hello was already said on this connection"
    elif greeted == "control" and op not in CONTROL_OPS:
        message = f"{op!r} needs a hello with this client's settings"
    else:
        return None
    return {"error": {"type": "StateError", "message": message}}


def peer_gone(conn: socket.socket) -> bool:
    """Whether the client closed its end (EOF waiting to be read), without waiting: ``select`` first, as a
    socket with a timeout would wait for data even when asked not to."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


def close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        log.debug("connection already closed")
    conn.close()
