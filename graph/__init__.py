"""DIVER's reasoning pipeline as a LangGraph state machine (installed as ``diver.graph``).

Entry points: ``diver.graph.graph.graph`` (compiled, for ``langgraph dev``) and
``diver.graph.run.run_deep_search`` / ``arun_deep_search`` (for the CLI, MCP server and evals).
"""
