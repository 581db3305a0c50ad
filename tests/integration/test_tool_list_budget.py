"""The `tools/list` answer every connecting agent reads first stays small: measured as sent (the JSON-RPC
frame the server writes to stdout, through the SDK's stdio client) and kept under a budget. Growing past it
is a conscious choice: raise TOOLS_LIST_BUDGET with the new figure in docs/mcp.md, after trimming what can go.

Measured 2026-12-04: 26,471 characters before the compaction of issue 23, 21,764 after (9 tools);
24,257 with issue 23's sync/watch parameters and citation fields."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/ is not installed

pytest.importorskip("mcp")
from benchmarks.mcp_tool_list import breakdown, tools_list_frame  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOOLS_LIST_BUDGET = 24_500  # characters of the whole frame, all 9 tools (read-only: fewer)


async def test_tools_list_stays_under_its_budget(tmp_path: Path) -> None:
    frame = await tools_list_frame(tmp_path)
    rows = breakdown(frame)
    print(f"\ntools/list as sent: {len(frame)} characters (budget {TOOLS_LIST_BUDGET}), {len(rows)} tools")
    for row in sorted(rows, key=lambda r: -r["total"]):
        print(f"  {row['tool']:<18} {row['total']:>6}")
    assert len(rows) == 9
    assert len(frame) <= TOOLS_LIST_BUDGET, f"tools/list grew to {len(frame)} characters"
    tools = json.dumps(json.loads(frame)["result"]["tools"])
    assert '"title": "' not in tools  # no derived titles (SearchHit's `title` property is an object schema)
