"""Every optional dependency, missing: the command that needs it prints one line naming its extra and exits
non-zero (no traceback). Each extra of pyproject.toml is hidden in turn from a real subprocess of the
installed CLI (tests/hide_extras/sitecustomize.py: its modules cannot be imported or found, its
distributions are absent from importlib.metadata), as if it had not been installed; the README's
`make demo` environment, built for real, is tests/integration/test_readme_quickstart.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from diver.errors import OPTIONAL_MODULES, MissingDependency, missing_dependency, require, require_extra

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HIDER = Path(__file__).with_name("hide_extras")
EXTRAS: dict[str, list[str]] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
    "optional-dependencies"
]
# Installed whatever the extras: hiding them would break the core, not model a missing extra.
CORE_PROVIDED = {"httpx": "chromadb (a core dependency) depends on it"}
# The command of each extra a user runs, and would see fail without it.
COMMANDS: dict[str, list[str]] = {
    "local": [str(BIN / "diver"), "index", "notes", "{docs}"],
    "gpu": [str(BIN / "diver"), "index", "notes", "{docs}"],
    "llm": [str(BIN / "diver"), "deep-search", "notes", "why do two socks match?"],
    "mcp": [str(BIN / "diver"), "serve"],
    "local-llm": [sys.executable, "-m", "diver.evals.rerank_cost", "--queries", "1"],
    "eval": [str(BIN / "diver"), "eval", "-b", "theoremqa-theorems-offline", "--stages", "bm25"],
    "bench": [sys.executable, "-m", "benchmarks.run", "--quick"],
    "train": [str(BIN / "diver"), "finetune", "{docs}/pairs.jsonl", "-c", "notes", "-o", "{docs}/model"],
    "cpu-fast": [str(BIN / "diver"), "index", "notes", "{docs}"],
    "milvus": [str(BIN / "diver"), "collections"],
}
# Settings that make a command need its extra (without them it has a fallback that needs none).
COMMAND_ENV: dict[str, dict[str, str]] = {
    "cpu-fast": {"DIVER_EMBEDDING__BACKEND": "onnx"},  # `auto` falls back to torch without the extra
    "milvus": {"DIVER_STORE__BACKEND": "milvus", "DIVER_STORE__MILVUS_URI": "http://127.0.0.1:9"},
}
NO_COMMAND = {
    "formats": "a notebook or Office file is skipped with a line naming the extra while the rest of the folder is "
    "indexed (exit 0): tests/test_formats.py",
    "studio": "its only entry point is langgraph-cli's own `langgraph` executable (DIVER imports none of it)",
    "dev": "test and lint tools",
    "all": "the union of the others",
}


def distribution(requirement: str) -> str:
    """'llama-cpp-python[server]==0.3.36' -> 'llama-cpp-python'."""
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower()


def hidden(extra: str) -> tuple[list[str], list[str]]:
    """(modules, distributions) of ``extra`` to hide: its own packages, less those the core installs anyway."""
    dists = {distribution(r) for r in EXTRAS[extra]}
    modules = [m for m, (d, _) in OPTIONAL_MODULES.items() if d in dists and m not in CORE_PROVIDED]
    return modules, sorted(OPTIONAL_MODULES[m][0] for m in modules)


def run_hidden(command: list[str], modules: list[str], dists: list[str], tmp_path: Path,
               extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")} | (extra_env or {})
    env.update(PYTHONPATH=str(HIDER), DIVER_TEST_HIDE_MODULES=",".join(modules),
               DIVER_TEST_HIDE_DISTS=",".join(dists), DIVER_DATA_DIR=str(tmp_path / "data"),
               DIVER_ENGINE__MODE="local", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # fmt: skip
    return subprocess.run(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_the_table_of_optional_modules_matches_pyproject() -> None:
    assert set(EXTRAS) == set(COMMANDS) | set(NO_COMMAND), "a new extra needs a command here (or a reason)"
    for module, (dist, extras) in OPTIONAL_MODULES.items():
        for extra in extras:
            assert dist in {distribution(r) for r in EXTRAS[extra]}, f"{module}: {dist} is not in [{extra}]"
    listed = {d for d, _ in OPTIONAL_MODULES.values()}
    for extra in set(EXTRAS) - {"dev", "all"}:
        missing = {distribution(r) for r in EXTRAS[extra]} - listed
        assert not missing, f"[{extra}] packages missing from diver.errors.OPTIONAL_MODULES: {missing}"


@pytest.mark.parametrize("extra", sorted(COMMANDS))
def test_without_the_extra_its_command_prints_one_line_naming_it(extra: str, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "socks.txt").write_text("Pigeonhole principle: three socks, two colours, one pair.", encoding="utf-8")
    (docs / "pairs.jsonl").write_text('{"query": "socks", "positive_text": "pigeonhole"}\n', encoding="utf-8")
    modules, dists = hidden(extra)
    assert modules, extra
    command = [part.replace("{docs}", str(docs)) for part in COMMANDS[extra]]
    result = run_hidden(command, modules, dists, tmp_path, COMMAND_ENV.get(extra))
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0, output
    assert "Traceback" not in output and "Error:" not in output.replace("error:", ""), output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert f"extra '{extra}'" in lines[0] or f"[{extra}]" in lines[0], lines[0]
    assert "pip install 'diver-retrieval[" in lines[0], lines[0]


def test_diver_mcp_without_mcp_prints_one_line(tmp_path: Path) -> None:
    result = run_hidden([str(BIN / "diver-mcp")], *hidden("mcp"), tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: diver serve (the MCP server) needs the optional package 'mcp' (extra 'mcp'): "
        "pip install 'diver-retrieval[mcp]'; in a checkout: make setup"
    ], result.stderr
    assert result.stdout == ""  # stdout is the JSON-RPC channel


def test_every_command_is_listed_with_every_extra_hidden(tmp_path: Path) -> None:
    """Adapters register their commands without their extras (a missing extra is a clear error, not an
    unknown command)."""
    modules = [m for m in OPTIONAL_MODULES if m not in CORE_PROVIDED]
    result = run_hidden([str(BIN / "diver"), "--help"], modules, [OPTIONAL_MODULES[m][0] for m in modules], tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("index", "search", "deep-search", "serve", "eval", "finetune", "demo", "config"):
        assert re.search(rf"│ {command}\s", result.stdout), (command, result.stdout)


def test_require_names_the_missing_module_not_the_one_asked_for() -> None:
    exc = ModuleNotFoundError("No module named 'torch'", name="torch")
    error = missing_dependency(exc, "sentence_transformers", purpose="the embedder")
    assert (error.package, error.extras) == ("torch", ("local", "gpu"))
    assert str(error) == ("the embedder needs the optional package 'torch' (extra 'local'): "
                          "pip install 'diver-retrieval[local]' (or [gpu]); in a checkout: make setup")  # fmt: skip
    broken = missing_dependency(ModuleNotFoundError("No module named 'zz'", name="zz"), "peft", "train", "LoRA")
    assert broken.extra == "train" and "importing 'peft' failed" in str(broken)
    with pytest.raises(MissingDependency, match=r"extra 'mcp'"):
        require("diver_no_such_module_xyz", "mcp", "a test")


def test_require_extra_checks_without_importing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "peft", None)  # absent
    with pytest.raises(MissingDependency, match=r"'peft' \(extra 'train'\)"):
        require_extra("train", "diver finetune")
    require_extra("mcp", "diver serve")  # installed in the test venv: no error


def _main_raising(monkeypatch: pytest.MonkeyPatch, exc: Exception, argv: list[str]) -> None:
    from diver import cli

    def app() -> None:
        raise exc

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(cli, "_register_adapters", lambda: None)
    monkeypatch.setattr(sys, "argv", ["diver", *argv])
    cli.main()


def test_an_unrouted_optional_import_still_gives_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's last net: an optional module imported without ``require`` is reported like one that was."""
    with pytest.raises(SystemExit) as exited:
        _main_raising(monkeypatch, ModuleNotFoundError("No module named 'peft'", name="peft"), ["finetune", "x"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: diver finetune needs the optional package 'peft' (extra 'train'): "
        "pip install 'diver-retrieval[train]'; in a checkout: make setup"
    ]


def test_a_missing_core_module_is_not_blamed_on_an_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModuleNotFoundError, match="numpy"):
        _main_raising(monkeypatch, ModuleNotFoundError("No module named 'numpy'", name="numpy"), ["search"])
