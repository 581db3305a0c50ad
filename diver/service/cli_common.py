"""What ``diver`` (diver/cli.py) and ``diver train`` (diver/train/cli.py) share: the ``--json`` option,
the error exit and opening the configured engine. It sits in diver.service, below both CLIs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from diver.config import DiverSettings
from diver.errors import DiverError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table or text.")]


def fail(exc: DiverError) -> None:
    """Print ``error: <message>`` in red on stderr and exit with status 2."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def open_configured_engine(settings: DiverSettings) -> Any:
    """The engine the settings name: the shared engine process, a remote one or in-process."""
    from diver.service import open_engine

    return open_engine(settings)
