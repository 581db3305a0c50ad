"""``python -m diver.server`` / ``diver-mcp``: serve DIVER over MCP (stdio by default)."""

from __future__ import annotations

from diver.server.cli import main

if __name__ == "__main__":
    main()
