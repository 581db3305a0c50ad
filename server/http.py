"""Streamable HTTP transport: loopback by default, optional bearer token (required off loopback)."""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from typing import Any

from mcp.server.mcpserver import MCPServer

from diver.errors import ConfigError

log = logging.getLogger(__name__)
ASGIApp = Any


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerAuth:
    """ASGI middleware: HTTP requests without ``Authorization: Bearer <token>`` get 401 and reach nothing."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
            if not hmac.compare_digest(given, self._expected):
                body = json.dumps(
                    {"error": "unauthorized", "detail": "missing or wrong bearer token"}
                ).encode()
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="diver"'),
                    (b"content-length", str(len(body)).encode()),
                ]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer, host: str, token: str | None) -> ASGIApp:
    """The ASGI app for ``host``; refuses a non-loopback address without a token."""
    if not token and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} without a bearer token: set server.auth_token "
            "(DIVER_SERVER__AUTH_TOKEN) or bind to 127.0.0.1"
        )
    app = server.streamable_http_app(host=host)
    return BearerAuth(app, token) if token else app


async def serve_http(server: MCPServer, host: str, port: int, token: str | None) -> None:
    """Serve until cancelled (uvicorn logs go to stderr)."""
    import uvicorn

    app = http_app(server, host, token)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", log_config=None, lifespan="on")
    log.info(
        "DIVER MCP server on http://%s:%d/mcp%s", host, port, " (bearer token required)" if token else ""
    )
    await uvicorn.Server(config).serve()
