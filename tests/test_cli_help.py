"""Every command and subcommand of ``diver`` renders its --help (help strings are read as rich markup)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from diver import cli


def _command_paths() -> list[list[str]]:
    cli._register_adapters()  # eval and serve, as main() does
    root = typer.main.get_command(cli.app)
    paths: list[list[str]] = [[]]

    def walk(group: object, prefix: list[str]) -> None:
        # duck-typed: typer >= 0.20 ships its own copy of click, so isinstance(click.Group) is not reliable
        for name, sub in (getattr(group, "commands", None) or {}).items():
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


PATHS = _command_paths()


def test_the_adapters_and_core_commands_are_all_there() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"index", "search", "deep-search", "demo", "collections", "config"} <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "diver")
def test_help_renders(path: list[str]) -> None:
    result = CliRunner().invoke(cli.app, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, f"diver {' '.join(path)} --help failed:\n{result.output}\n{result.exception!r}"
    assert "Usage:" in result.output and "Traceback" not in result.output


def test_index_help_in_a_real_process() -> None:
    """The reported crash, as a user runs it (rich output on, real argv handling)."""
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "from diver.cli import main; main()", "index", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "100", "PATH": "", "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "metadata" in proc.stdout and "MarkupError" not in proc.stderr
