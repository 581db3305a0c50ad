"""Shared helpers: peak-RSS sampling, forked sides, latency percentiles, machine description."""

from __future__ import annotations

import multiprocessing
import os
import platform
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import psutil

MB = 1024 * 1024


class PeakRSS:
    """Samples this process's RSS every ``interval`` seconds; ``peak_mb`` and ``delta_mb`` (peak - start)."""

    def __init__(self, interval: float = 0.01) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.start_mb = self.peak_mb = 0.0

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / MB)

    def __enter__(self) -> PeakRSS:
        self.start_mb = self.peak_mb = self._process.memory_info().rss / MB
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / MB)

    @property
    def delta_mb(self) -> float:
        return self.peak_mb - self.start_mb


def _child(conn: Any, fn: Callable[..., Any], args: tuple) -> None:
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent with its traceback
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def run_forked(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a forked child (shares the parent's corpus, isolates its memory); return its result."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(child, fn, args))
    process.start()
    child.close()
    try:
        status, value = parent.recv()
    except EOFError as exc:
        process.join()
        raise RuntimeError(f"benchmark child died (exit code {process.exitcode})") from exc
    process.join()
    if status != "ok":
        raise RuntimeError(f"benchmark child failed: {value}")
    return value


def latency_stats(ms: Sequence[float]) -> dict[str, float]:
    values = np.asarray(ms, dtype=np.float64)
    return {
        "n": int(values.size),
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p95_ms": round(float(np.percentile(values, 95)), 3),
        "mean_ms": round(float(values.mean()), 3),
    }


def timed_each(fn: Callable[[Any], Any], items: Sequence[Any]) -> tuple[list[float], list[Any]]:
    """Per-item latency in ms and the results."""
    latencies, results = [], []
    for item in items:
        started = time.perf_counter()
        results.append(fn(item))
        latencies.append((time.perf_counter() - started) * 1000.0)
    return latencies, results


def ratio(numerator: float, denominator: float) -> float | None:
    return round(float(numerator) / float(denominator), 2) if denominator else None


def top10_overlap(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]]) -> float:
    """Mean |A ∩ B| / 10 over queries."""
    return round(float(np.mean([len(set(x[:10]) & set(y[:10])) / 10 for x, y in zip(a, b, strict=True)])), 4)


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for name in (
        "numpy",
        "chromadb",
        "bm25s",
        "gensim",
        "rank_bm25",
        "numba",
        "torch",
        "sentence_transformers",
    ):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            versions[name] = None
    return {
        "hostname": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }
