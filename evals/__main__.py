"""``python -m diver.evals eval ...``: the eval command without the main CLI."""

import typer

from .cli import register

app = typer.Typer(add_completion=False, help="DIVER evaluation harness.")
register(app)


@app.callback()
def _main() -> None:
    """Keeps ``eval`` a named subcommand."""


if __name__ == "__main__":
    app()
