"""The README's MCP quick start, as written, in the environment the README's first command builds.

`make demo` first runs `make setup-core` (venv, uv, the CPU torch wheel, the demo's extras from uv.lock;
the local LLM follows in the background). This test runs that same target into a fresh venv (the warm uv
cache makes it take seconds), then starts the server with the exact command line of the README's
`claude mcp add` line (only the checkout path and $HOME replaced) through the MCP SDK's stdio client:
lists the tools, indexes two documents and searches. In that venv the extras the demo does not install
are really absent: their commands print one line naming the extra."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("mcp")
from mcp import Client, StdioServerParameters  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def readme_server_command() -> tuple[dict[str, str], list[str]]:
    """(env, argv) of the README's `claude mcp add diver -e K=V ... -- <command>` line."""
    line = re.search(r"^claude mcp add diver (.+)$", README, re.M)
    assert line, "the README lost its `claude mcp add diver` quick start"
    words = shlex.split(line.group(1))
    split = words.index("--")
    options, argv = words[:split], words[split + 1 :]
    env = dict(options[i + 1].split("=", 1) for i, o in enumerate(options) if o == "-e")
    return env, argv


@pytest.fixture(scope="module")
def demo_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv built by the Makefile target `make demo` installs with (nothing else installed into it)."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo: llm-background\b", makefile, re.M), "make demo no longer starts with llm-background"
    assert re.search(r"^llm-background: setup-core\b", makefile, re.M), "llm-background no longer needs setup-core"
    venv = tmp_path_factory.mktemp("demo") / ".venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"))}
    done = subprocess.run(["make", "--no-print-directory", "setup-core", f"VENV={venv}"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return venv


async def test_the_readme_mcp_quick_start_works_after_make_demo(demo_venv: Path, tmp_path: Path) -> None:
    readme_env, argv = readme_server_command()
    assert argv[0] == "/path/to/repo/.venv/bin/diver" and argv[1:] == ["serve"], argv
    home = tmp_path / "home"
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}  # what an MCP client passes
    env.update({k: v.replace("$HOME", str(home)) for k, v in readme_env.items()})
    command = argv[0].replace("/path/to/repo/.venv", str(demo_venv))
    params = StdioServerParameters(command=command, args=argv[1:], env=env, cwd=str(tmp_path))
    try:
        await _quick_start(params)
    finally:
        _stop_shared_engine(Path(env["DIVER_DATA_DIR"]))


async def _quick_start(params: StdioServerParameters) -> None:
    async with Client(params, read_timeout_seconds=300) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"search", "deep_search", "index_documents", "index_path", "get_document"} <= tools
        docs = [
            {"id": "socks", "text": "Pigeonhole principle\nDrawing three socks of two colours gives a pair."},
            {"id": "seats", "text": "Circular permutations\nn people sit around a round table in (n-1)! ways."},
        ]
        indexed = await client.call_tool("index_documents", {"collection": "notes", "documents": docs})
        assert not indexed.is_error, indexed.content
        found = await client.call_tool("search", {"collection": "notes", "query": "how many socks for a pair", "k": 2})
        assert not found.is_error, found.content
        assert found.structured_content["hits"][0]["id"] == "socks"


def _stop_shared_engine(data_dir: Path) -> None:
    """The shared engine process the server started exits when idle; this test ends it at once (its pid)."""
    pid_file = data_dir / "engine.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), 15)
        except (ValueError, ProcessLookupError):
            pass


def test_the_demo_venv_lacks_the_other_extras_and_says_so(demo_venv: Path, tmp_path: Path) -> None:
    """As bm25s's CI does: a command whose extra is really not installed prints one line naming it."""
    probe = subprocess.run([str(demo_venv / "bin/python"), "-c", "import pytrec_eval"], capture_output=True)
    assert probe.returncode != 0, "the demo venv has the eval extra: it no longer models `make demo`"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DIVER_DATA_DIR": str(tmp_path / "data"),
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    for argv, extra in (
        (["eval", "-b", "theoremqa-theorems-offline", "--stages", "bm25"], "eval"),
        (["finetune", "pairs.jsonl", "-c", "notes", "-o", "model"], "train"),
    ):
        done = subprocess.run([str(demo_venv / "bin/diver"), *argv], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        lines = (done.stdout + done.stderr).strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1 and f"extra '{extra}'" in lines[0], (argv, lines)
