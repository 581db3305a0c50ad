"""The size of the MCP server's ``tools/list`` answer, as sent: every agent that connects reads it (and pays
for it in context) before its first call. Measured with the SDK's client over stdio, from the bytes the
server writes to stdout (the JSON-RPC frame).

    python -m benchmarks.mcp_tool_list [--read-only]

Prints the frame's characters, then each tool's share (description, input and output schema).
tests/integration/test_tool_list_budget.py keeps the figure under a budget.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_TEE = """import subprocess, sys
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE)
with open(sys.argv[1], "ab") as log:
    for line in iter(proc.stdout.readline, b""):
        log.write(line); log.flush(); sys.stdout.buffer.write(line); sys.stdout.buffer.flush()
sys.exit(proc.wait())
"""


async def tools_list_frame(work: Path, read_only: bool = False) -> str:
    """The JSON-RPC frame of the ``tools/list`` answer, exactly as the server wrote it to stdout."""
    from mcp import Client, StdioServerParameters

    log = work / "stdout.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}
    env.update(DIVER_DATA_DIR=str(work / "data"), DIVER_ENGINE__MODE="local", HF_HUB_OFFLINE="1",
               DIVER_SERVER__READ_ONLY=str(read_only).lower())  # fmt: skip
    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", _TEE, str(log), sys.executable, "-m", "diver.server", "--transport", "stdio"],
        env=env, cwd=str(REPO),
    )  # fmt: skip
    async with Client(params, read_timeout_seconds=300) as client:
        await client.list_tools()
    for line in log.read_text(encoding="utf-8").splitlines():
        message = json.loads(line)
        if "tools" in (message.get("result") or {}):
            return line
    raise RuntimeError(f"no tools/list answer in {log}")


def breakdown(frame: str) -> list[dict[str, Any]]:
    """Characters per tool: the whole tool object, its description, input and output schemas (compact JSON)."""
    rows = []
    for tool in json.loads(frame)["result"]["tools"]:
        size = {key: len(json.dumps(tool.get(key, ""), ensure_ascii=False, separators=(",", ":")))
                for key in ("description", "inputSchema", "outputSchema")}  # fmt: skip
        rows.append({"tool": tool["name"], "total": len(json.dumps(tool, ensure_ascii=False, separators=(",", ":"))), **size})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mcp_tool_list", description=__doc__)
    parser.add_argument("--read-only", action="store_true", help="DIVER_SERVER__READ_ONLY=true (no write tools)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="diver-tool-list-") as work:
        frame = asyncio.run(tools_list_frame(Path(work), args.read_only))
    rows = breakdown(frame)
    print(f"tools/list answer as sent: {len(frame)} characters, {len(frame.encode())} bytes, {len(rows)} tools"
          f"{' (read-only)' if args.read_only else ''}")  # fmt: skip
    print(f"{'tool':<18} {'total':>6} {'descr.':>6} {'input':>6} {'output':>6}")
    for row in sorted(rows, key=lambda r: -r["total"]):
        print(f"{row['tool']:<18} {row['total']:>6} {row['description']:>6} {row['inputSchema']:>6} {row['outputSchema']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
