"""``diver engine status|stop``: the shared engine process of the data directory."""

from __future__ import annotations

import json
from typing import Annotated

import typer

engine_app = typer.Typer(help="The shared engine process of the data directory (started on first use).")


@engine_app.command("status")
def status(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show the running engine (pid, embedder, clients), or say that none runs."""
    from diver.config import load_settings
    from diver.service import protocol
    from diver.service.client import RemoteEngine
    from diver.service.spawn import try_connect

    settings = load_settings()
    conn = try_connect(protocol.socket_path(settings.data_dir.resolve()))
    if conn is None:
        typer.echo(f"no engine is running for {settings.data_dir}")
        raise typer.Exit(1)
    conn.close()
    with RemoteEngine(settings) as engine:
        info = engine.status()
    if json_out:
        typer.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        typer.echo(f"{key}: {value}")


@engine_app.command("stop")
def stop() -> None:
    """Stop the running engine after the requests in flight (the next client starts a new one)."""
    from diver.config import load_settings
    from diver.service import protocol
    from diver.service.client import RemoteEngine
    from diver.service.spawn import try_connect

    settings = load_settings()
    conn = try_connect(protocol.socket_path(settings.data_dir.resolve()))
    if conn is None:
        typer.echo(f"no engine is running for {settings.data_dir}")
        return
    conn.close()
    RemoteEngine(settings).stop_engine()
    typer.echo("engine stopping")


def register(app: typer.Typer) -> None:
    """Add ``engine`` to the main ``diver`` CLI."""
    app.add_typer(engine_app, name="engine")
