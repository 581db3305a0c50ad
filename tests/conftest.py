"""Shared fixtures: offline environment, settings on a temporary data dir, one MiniLM per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests_support import make_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("LANGGRAPH_CLI_NO_ANALYTICS", "1")
for _name in [n for n in os.environ if n.startswith("DIVER_")]:
    del os.environ[_name]  # a developer's own DIVER_* settings must not leak into tests
# In-process tests open the data directory themselves; subprocesses started with DIVER_* removed from
# their environment use the default shared engine (tests/integration/test_multiprocess.py).
os.environ["DIVER_ENGINE__MODE"] = "local"

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


@pytest.fixture
def hashing_settings(tmp_path: Path):
    """Settings with the model-free hashing embedder (fast; for engine mechanics)."""
    return make_settings(tmp_path)


@pytest.fixture
def engine(hashing_settings):
    from diver.engine import Engine

    with Engine(hashing_settings) as eng:
        yield eng


@pytest.fixture(scope="session")
def minilm():
    """The offline MiniLM on torch (loaded once per test session; the reference of the CPU backends,
    which tests/test_embedding_backends.py checks against it)."""
    from diver.config import EmbeddingSettings
    from diver.index.dense.embedders import build_embedder

    return build_embedder(EmbeddingSettings(backend="torch"))


@pytest.fixture(scope="session")
def theorems():
    """The 354 TheoremQA theorems as (name, text) pairs."""
    import json

    with open(DATA / "theoremqa" / "all_theorems.json", encoding="utf-8") as handle:
        return list(json.load(handle).items())


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """One real ``milvus-lite server`` (127.0.0.1, a free port) for the session's Milvus-backend tests."""
    pytest.importorskip("pymilvus", reason="the milvus backend's client (extras milvus, dev)")
    pytest.importorskip("milvus_lite", reason="milvus-lite runs the test server (extras milvus, dev)")
    from milvus_support import MilvusLite

    server = MilvusLite(tmp_path_factory.mktemp("milvus") / "data").start()
    yield server
    server.stop()
