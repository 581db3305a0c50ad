"""Streamable HTTP transport: a bearer token always, and Host/Origin checks on every bind address.

Loopback is not a security boundary on a shared machine (every local user reaches 127.0.0.1), so the HTTP
transport never runs without a token: with no ``server.auth_token`` it uses the token kept in
``<data_dir>/http-token`` (created 0600 on first start, like Jupyter's) and says where it is on stderr.
Off loopback a token must be configured explicitly. Requests whose ``Host`` is not the bind address (or
``server.allowed_hosts``) get 421, and a browser ``Origin`` that is not one of ours gets 403 (DNS
rebinding), before the token is even looked at.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from diver.errors import ConfigError
from diver.index.engine import private_data_dir

log = logging.getLogger(__name__)
ASGIApp = Any
TOKEN_FILE = "http-token"
WILDCARD_BINDS = ("0.0.0.0", "::", "")
_PORT = re.compile(r":\d{1,5}$")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _header_name(host: str) -> str:
    """``host`` as it appears in a Host header (IPv6 literals in brackets), lower case."""
    host = host.strip().lower()
    return f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> list[str]:
    """Host header names accepted for a server bound to ``bind`` (any port), plus ``extra``."""
    if bind in WILDCARD_BINDS:
        names = ["127.0.0.1", "localhost", "::1", socket.gethostname()]
    else:
        names = [bind, *(["localhost"] if is_loopback(bind) else [])]
    return sorted({_header_name(n) for n in [*names, *extra] if n})


def allowed_origins(hosts: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """Origins (scheme://host, any port) a browser page may call us from: our own hosts, plus ``extra``."""
    return sorted({f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")} | {o.rstrip("/") for o in extra})


class HostOriginGuard:
    """ASGI middleware: a Host header not among ``hosts`` gets 421; an Origin not among ``origins`` gets 403
    (a DNS-rebinding page: its requests name the attacker's host or origin). No Origin is a non-browser
    client and passes."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str], origins: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(hosts)
        self.origins = frozenset(o.lower() for o in origins)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers", []))
            host = headers.get(b"host", b"").decode("latin-1").strip().lower()
            origin = headers.get(b"origin", b"").decode("latin-1").strip().lower()
            if _PORT.sub("", host) not in self.hosts:
                await _refuse(send, 421, "invalid Host header", f"host {host!r} is not one this server answers to "
                              "(server.allowed_hosts)")  # fmt: skip
                return
            origin = origin.rstrip("/")
            if origin and origin not in self.origins and _PORT.sub("", origin) not in self.origins:
                await _refuse(send, 403, "invalid Origin header", f"origin {origin!r} is not allowed "
                              "(server.allowed_origins)")  # fmt: skip
                return
        await self.app(scope, receive, send)


class BearerAuth:
    """ASGI middleware: HTTP requests without ``Authorization: Bearer <token>`` get 401 and reach nothing."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
            if not hmac.compare_digest(given, self._expected):
                await _refuse(send, 401, "unauthorized", "missing or wrong bearer token",
                              [(b"www-authenticate", b'Bearer realm="diver"')])  # fmt: skip
                return
        await self.app(scope, receive, send)


async def _refuse(send: Any, status: int, error: str, detail: str,
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or []),
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def token_file_token(data_dir: Path) -> tuple[str, Path, bool]:
    """The token kept in ``<data_dir>/http-token`` (created 0600 with a fresh random token when missing):
    (token, path, created). A file another user owns or may read is replaced by a fresh one."""
    private_data_dir(data_dir)
    path = data_dir / TOKEN_FILE
    try:
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077:
            token = path.read_text(encoding="utf-8").strip()
            if len(token) >= 32:
                return token, path, False
        log.warning("replacing %s: not a private file of this user, or no token in it", path)
        path.unlink()
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, path, True


def http_app(server: MCPServer, host: str, token: str, hosts: Iterable[str] = (),
             origins: Iterable[str] = ()) -> ASGIApp:  # fmt: skip
    """The ASGI app for ``host``: Host/Origin checks, then the bearer token, then MCP. ``hosts`` and
    ``origins`` add to those derived from the bind address."""
    if not token:
        raise ConfigError("the HTTP transport needs a bearer token (server.auth_token or the token file)")
    names = allowed_hosts(host, hosts)
    accepted = allowed_origins(names, origins)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[p for n in names for p in (n, f"{n}:*")],
        allowed_origins=[p for o in accepted for p in (o, f"{o}:*")],
    )
    app = server.streamable_http_app(host=host, transport_security=security)
    return HostOriginGuard(BearerAuth(app, token), names, accepted)


def resolve_token(configured: str | None, host: str, data_dir: Path) -> str:
    """The configured token, or (loopback only) the data directory's token file, announced on stderr."""
    if configured:
        return configured
    if not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} without a bearer token: set server.auth_token "
            "(DIVER_SERVER__AUTH_TOKEN) or bind to 127.0.0.1"
        )
    token, path, created = token_file_token(data_dir)
    sys.stderr.write(
        f"DIVER MCP server: no server.auth_token is set; clients must send 'Authorization: Bearer <token>' "
        f"with the token {'created' if created else 'kept'} in {path} (readable by you only)\n"
    )
    return token


async def serve_http(server: MCPServer, host: str, port: int, token: str, hosts: Iterable[str] = (),
                     origins: Iterable[str] = ()) -> None:  # fmt: skip
    """Serve until cancelled (uvicorn logs go to stderr)."""
    import uvicorn

    app = http_app(server, host, token, hosts, origins)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", log_config=None, lifespan="on")
    log.info("DIVER MCP server on http://%s:%d/mcp (bearer token required)", _header_name(host), port)
    await uvicorn.Server(config).serve()
