"""``diver finetune``/``reindex``/``synth`` register on the CLI and fail with typed, readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from diver.train.cli import register


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("DIVER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DIVER_EMBEDDING__PROVIDER", "hashing")
    monkeypatch.delenv("DIVER_LLM__EXPANDER__MODEL", raising=False)
    app = typer.Typer()
    register(app)
    app.callback()(lambda: None)
    return app


def test_commands_are_registered(app: typer.Typer) -> None:
    for command in ("finetune", "reindex", "synth"):
        result = CliRunner().invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output


def test_typed_errors(app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"query": "q", "positive_id": "d1"}\n', encoding="utf-8")
    result = runner.invoke(app, ["finetune", str(pairs), "-c", "nothere", "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "unknown collection 'nothere'" in result.output
    result = runner.invoke(app, ["finetune", str(tmp_path / "missing.jsonl"), "-c", "x", "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "not found" in result.output
    result = runner.invoke(app, ["reindex", "nothere", "--model", str(tmp_path)])
    assert result.exit_code == 2 and "not a sentence-transformers model folder" in result.output
    result = runner.invoke(app, ["synth", "nothere", "-o", str(tmp_path / "s.jsonl")])
    assert result.exit_code == 2 and "no expander model configured" in result.output


def test_both_clis_share_the_error_exit_and_json_option():
    import typer

    from diver import cli as main_cli
    from diver.errors import InputError
    from diver.service import cli_common
    from diver.train import cli as train_cli

    assert main_cli.fail is train_cli.fail is cli_common.fail
    assert main_cli.JsonOpt is train_cli.JsonOpt
    try:
        cli_common.fail(InputError("bad"))
    except typer.Exit as exc:
        assert exc.exit_code == 2
    else:
        raise AssertionError("fail() must exit")
