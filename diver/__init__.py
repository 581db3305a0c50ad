"""DIVER: agentic, reasoning-intensive retrieval. Core library (no MCP or LangGraph imports here)."""

__version__ = "0.1.0"
