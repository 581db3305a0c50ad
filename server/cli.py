"""``diver serve``: the CLI side of the MCP server. ``register(app)`` adds the command to a Typer app."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

log = logging.getLogger("diver.server")


class Transport(StrEnum):
    stdio = "stdio"
    http = "http"


def run_server(
    transport: Transport = Transport.stdio,
    host: str | None = None,
    port: int | None = None,
    allow: list[Path] | None = None,
    log_level: str = "INFO",
) -> None:
    """Build the server from DIVER settings (+ these overrides) and serve until the client goes away."""
    from diver.errors import DiverError, require_extra
    from diver.server.quiet import configure_logging, quiet_environment, stdout_to_stderr
    from diver.service.cli_common import fail

    try:  # without the mcp extra: one line naming it (not a traceback from the imports below)
        require_extra("mcp", "diver serve (the MCP server)")
    except DiverError as exc:
        fail(exc)

    quiet_environment()
    configure_logging(log_level)
    with stdout_to_stderr():  # imports and settings must not write to the JSON-RPC channel
        import anyio

        from diver.config import load_settings
        from diver.server.app import build_server
        from diver.server.http import serve_http

        try:
            settings = load_settings()
            server_settings = settings.server.model_copy(
                update={
                    "host": host or settings.server.host,
                    "port": settings.server.port if port is None else port,
                    "allowed_roots": [*settings.server.allowed_roots, *(p.expanduser() for p in allow or [])],
                }
            )
            settings = settings.model_copy(update={"server": server_settings})
            server = build_server(settings)
        except DiverError as exc:
            log.error("%s", exc)
            raise typer.Exit(1) from exc
    config = settings.server
    try:
        if transport is Transport.stdio:
            anyio.run(server.run_stdio_async)
        else:
            from diver.server.http import resolve_token

            configured = config.auth_token.get_secret_value() if config.auth_token else None
            token = resolve_token(configured, config.host, settings.data_dir)
            anyio.run(serve_http, server, config.host, config.port, token, config.allowed_hosts, config.allowed_origins)
    except* DiverError as group:
        for exc in group.exceptions:
            log.error("%s", exc)
        raise typer.Exit(1) from None
    except* KeyboardInterrupt:
        log.info("stopped")


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app`` (the main ``diver`` CLI calls this)."""

    @app.command("serve")
    def serve(
        transport: Annotated[Transport, typer.Option(help="stdio (for Claude/IDEs) or streamable http.")] = (
            Transport.stdio
        ),
        host: Annotated[str | None, typer.Option(help="HTTP bind address (default server.host).")] = None,
        port: Annotated[int | None, typer.Option(help="HTTP port (default server.port).")] = None,
        allow: Annotated[
            list[Path] | None,
            typer.Option(help="Folder index_path may read (repeatable; adds to allowed_roots)."),
        ] = None,
        log_level: Annotated[str, typer.Option(help="Log level (logs go to stderr).")] = "INFO",
    ) -> None:
        """Run DIVER as an MCP server (tools: search, deep_search, index_*, list/get/delete)."""
        run_server(transport, host, port, allow, log_level)


def main(argv: list[str] | None = None) -> None:
    """Console entry ``diver-mcp``: the ``serve`` command alone."""
    app = typer.Typer(add_completion=False, no_args_is_help=False)
    register(app)
    app(args=argv if argv is not None else sys.argv[1:], prog_name="diver-mcp")
