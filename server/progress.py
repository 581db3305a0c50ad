"""Progress notifications for long tools: strictly increasing counters, one message per stage, and a
heartbeat so clients with a fixed request timeout (often 60 s) keep the call alive during slow LLM calls."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError

from diver.errors import DiverError
from diver.stages.progress import describe_event as describe

T = TypeVar("T")
Emit = Callable[[dict[str, Any]], None]
HEARTBEAT_S = 10.0


class ProgressReporter:
    """Turns events into ``ctx.report_progress`` calls with a strictly increasing progress value."""

    def __init__(self, ctx: Context, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.ctx = ctx
        self.heartbeat_s = heartbeat_s
        self.count = 0
        self.last = "starting"
        self._send, self._receive = anyio.create_memory_object_stream[dict[str, Any]](math.inf)

    def emit(self, event: dict[str, Any]) -> None:
        """Queue an event (call from the event loop's thread)."""
        self._send.send_nowait(event)

    def emit_from_thread(self, event: dict[str, Any]) -> None:
        """Queue an event from a worker thread started by ``anyio.to_thread``."""
        anyio.from_thread.run_sync(self._send.send_nowait, event)

    async def report(self, message: str) -> None:
        self.count += 1
        await self.ctx.report_progress(self.count, None, message)

    async def _pump(self) -> None:
        async with self._receive:
            while True:
                with anyio.move_on_after(self.heartbeat_s) as scope:
                    try:
                        event = await self._receive.receive()
                    except anyio.EndOfStream:
                        return
                if scope.cancelled_caught:
                    await self.report(f"still working: {self.last}")
                    continue
                self.last = describe(event)
                await self.report(self.last)

    async def run(self, work: Callable[[], Awaitable[T]], start: str, done: str) -> T:
        """Run ``work`` while reporting its queued events; ``start`` and ``done`` bracket the stream."""
        await self.report(start)
        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(self._pump)
            try:
                result = await work()
            # re-raised below, unwrapped: a task group would wrap it in an ExceptionGroup, which the SDK
            # reports as a bare "Error executing tool" and the message is lost (in_thread maps to ToolError)
            except (DiverError, ToolError, MCPError) as exc:
                failure = exc
            finally:
                self._send.close()
        if failure is not None:
            raise failure
        await self.report(done)
        return result
