"""ProgressReporter: strictly increasing progress, heartbeats, messages, and unwrapped errors."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

from diver.errors import InputError  # noqa: E402
from diver.server.progress import ProgressReporter, describe  # noqa: E402


class FakeContext:
    def __init__(self) -> None:
        self.reports: list[tuple[float, float | None, str | None]] = []

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        self.reports.append((progress, total, message))


async def test_events_heartbeats_and_order() -> None:
    ctx = FakeContext()
    reporter = ProgressReporter(ctx, heartbeat_s=0.05)  # type: ignore[arg-type]

    async def work() -> str:
        reporter.emit({"event": "retrieved", "round": 0, "hits": 7})
        await anyio.sleep(0.2)
        reporter.emit({"event": "stage_done", "stage": "pointwise", "llm_calls": 3, "ms": 12.0})
        await anyio.sleep(0.01)
        return "ok"

    assert await reporter.run(work, "start", "done") == "ok"
    values = [r[0] for r in ctx.reports]
    messages = [r[2] for r in ctx.reports]
    assert values == sorted(set(values)) and messages[0] == "start" and messages[-1] == "done"
    assert "round 0: retrieved 7 documents" in messages
    assert any(m and m.startswith("still working: round 0") for m in messages)
    assert "pointwise done (3 LLM calls, 12 ms)" in messages


async def test_diver_errors_come_out_unwrapped() -> None:
    reporter = ProgressReporter(FakeContext())  # type: ignore[arg-type]

    async def work() -> Any:
        raise InputError("bad")

    with pytest.raises(InputError, match="bad"):
        await reporter.run(work, "start", "done")


def test_describe_covers_graph_events() -> None:
    assert describe({"event": "decision", "stop_reason": "max_rounds", "next": ["pointwise"]}) == (
        "expansion stopped (max_rounds); next: pointwise"
    )
    assert (
        describe({"event": "llm_progress", "stage": "listwise", "done": 2, "total": 5})
        == "listwise: 2/5 LLM calls"
    )
    assert describe({"event": "indexed", "done": 5, "total": 10}) == "indexed 5/10 documents"


def test_one_describer_for_graph_and_server() -> None:
    from diver.graph import nodes

    assert nodes.describe_event is describe
    event = {"event": "stage_done", "stage": "pointwise", "ms": 12.4, "llm_calls": 3, "failures": 1}
    assert describe(event) == "pointwise done (3 LLM calls, 1 failed, 12 ms)"
    assert describe({"event": "retrieved", "round": 1, "hits": 4, "ms": 5.0}) == (
        "round 1: retrieved 4 documents in 5 ms"
    )
