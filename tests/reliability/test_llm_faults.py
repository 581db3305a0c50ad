"""The full deep-search graph against an LLM endpoint that misbehaves for real (HTTP on 127.0.0.1).

Each fault: the graph completes with fallbacks (retrieval-only ranking), the result names the degraded
stages and the reason, and the completion cache holds no failed reply. The real llama.cpp server
(messy-but-valid output) is exercised in tests/integration/test_llama_cpp.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from reliability_support import SECRET_KEY, FaultServer, cache_rows, free_port

from diver.config import load_settings
from diver.engine import Engine
from diver.graph.run import run_deep_search
from diver.text.documents import Document

pytest.importorskip("langchain_openai")

DOCS = [
    Document(id=f"doc{i}", text=f"Topic {i}\n" + text)
    for i, text in enumerate(
        [
            "In a right triangle the square of the hypotenuse equals the sum of squares of the legs.",
            "Bayes rule gives the posterior probability from the prior and the likelihood.",
            "If n+1 pigeons sit in n holes some hole holds two pigeons.",
            "Euler's formula for planar graphs: vertices minus edges plus faces equals two.",
            "Fermat's little theorem: a^p is congruent to a modulo a prime p.",
            "The central limit theorem: sums of independent variables tend to a normal distribution.",
        ]
    )
]
QUERY = "probability of a hypothesis after seeing evidence"
# (mode, words the degradation notes must contain: the reason, not just 'failed')
FAULTS = [
    ("refused", "OpenAIConnectionError"),
    ("hang", "TimeoutError"),
    ("http500", "Error code: 500"),
    ("http429", "Error code: 429"),
    ("truncated", "JSONDecodeError"),
    ("dropped", "OpenAIConnectionError"),
    ("empty_content", "empty completion"),
    ("empty_body", "JSONDecodeError"),
    ("html", "Unexpected response type"),
    ("plain", "Unexpected response type"),
]


@pytest.fixture(scope="module")
def collection_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("faults") / "data"
    with Engine(load_settings(data_dir=data_dir, embedding={"provider": "hashing"})) as engine:
        engine.collection("facts", create=True).upsert(DOCS)
    return data_dir


def deep_search_against(base_url: str, data_dir: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    for role in ("EXPANDER", "RERANKER"):
        monkeypatch.setenv(f"DIVER_LLM__{role}__BASE_URL", base_url)
        monkeypatch.setenv(f"DIVER_LLM__{role}__MODEL", "fault")
        monkeypatch.setenv(f"DIVER_LLM__{role}__API_KEY", SECRET_KEY)
        monkeypatch.setenv(f"DIVER_LLM__{role}__TIMEOUT_S", "0.5")
        monkeypatch.setenv(f"DIVER_LLM__{role}__MAX_RETRIES", "1")
    monkeypatch.setenv("DIVER_LLM__CACHE", "true")
    settings = load_settings(
        data_dir=data_dir,
        cache_dir=cache_dir,
        embedding={"provider": "hashing"},
        expansion={"rounds": 1, "n": 2, "feedback_k": 2},
        rerank={"rerank_k": 4, "window_size": 4, "window_step": 2},
    )
    with Engine(settings) as engine:
        started = time.monotonic()
        result = run_deep_search("facts", QUERY, engine=engine, context={"k": 5})
        return result, time.monotonic() - started


@pytest.mark.parametrize(("mode", "reason"), FAULTS, ids=[m for m, _ in FAULTS])
def test_graph_completes_and_says_what_degraded(mode, reason, collection_dir, tmp_path, monkeypatch) -> None:
    cache_dir = tmp_path / "cache"
    if mode == "refused":
        result, wall = deep_search_against(f"http://127.0.0.1:{free_port()}/v1", collection_dir, cache_dir, monkeypatch)
        requests = None
    else:
        with FaultServer(mode) as server:
            result, wall = deep_search_against(server.base_url, collection_dir, cache_dir, monkeypatch)
            requests = len(server.requests)
            assert server.seen_auth == {f"Bearer {SECRET_KEY}"}
    # completed with the retrieval ranking as fallback
    assert [h.id for h in result.hits] and {h.id for h in result.hits} <= {d.id for d in DOCS}
    assert len(result.hits) == 5 and len({h.id for h in result.hits}) == 5
    assert wall < 30, f"{mode}: took {wall:.1f}s"
    # which stages degraded, and why
    notes = " | ".join(result.notes)
    failures = " | ".join(f for r in result.expansions for f in r.failures)
    assert result.expansions and not any(r.expansions for r in result.expansions), result.expansions
    assert reason.lower() in (failures + notes).lower(), (mode, failures, notes)
    assert "pointwise" in notes and "listwise" in notes, notes
    assert "listwise" in result.fallbacks
    assert result.usage["pointwise"].failures + result.parse_failures["pointwise"] > 0
    assert SECRET_KEY not in notes + failures + result.model_dump_json()
    # the cache never stores a failed reply
    assert cache_rows(cache_dir) == [], mode
    if mode in ("refused", "dropped", "hang", "http500", "http429"):  # transient: retried once, then given up
        assert "after 2 attempt(s)" in failures, (mode, failures)
    if requests is not None and mode in ("http500", "http429", "hang", "dropped"):  # transient: retried
        assert requests > 2 * 2, f"{mode}: transient errors were not retried ({requests} requests)"


def test_429_retry_after_is_honoured_and_success_cached(collection_dir, tmp_path, monkeypatch) -> None:
    """The first request of every prompt gets 429 + Retry-After: 1; the retry succeeds and is cached."""
    cache_dir = tmp_path / "cache"
    with FaultServer("429_then_ok", retry_after="1") as server:
        result, _ = deep_search_against(server.base_url, collection_dir, cache_dir, monkeypatch)
        by_prompt: dict[str, list[float]] = {}
        for request in server.requests:
            by_prompt.setdefault(request["prompt"], []).append(request["t"])
    assert not result.notes or all("failed" not in n for n in result.notes), result.notes
    assert any(r.expansions for r in result.expansions)
    assert result.usage["pointwise"].retries > 0
    # n=2 identical expander prompts: one gets 429 then retries; compare first and last request
    gaps = [times[-1] - times[0] for times in by_prompt.values() if len(times) > 1]
    assert gaps and min(gaps) >= 0.95, gaps  # waited the Retry-After, not the 0.5 s default backoff
    rows = cache_rows(cache_dir)
    assert rows and all(r["text"].strip() for r in rows)
    assert not any("rate limited" in r["text"] for r in rows)
