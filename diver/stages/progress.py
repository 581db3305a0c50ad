"""The one describer of progress events (graph rounds, rerank stages, indexing).

Pure: graph/nodes.py puts its line in each custom-stream event's ``message``; server/progress.py sends
it as the MCP progress message. It lives here, below both, so neither imports the other.
"""

from __future__ import annotations

from typing import Any


def _ms(event: dict[str, Any]) -> str:
    return f" in {event['ms']:.0f} ms" if isinstance(event.get("ms"), int | float) else ""


def describe_event(event: dict[str, Any]) -> str:
    """A one-line, human-readable message for a progress event."""
    kind = event.get("event", "")
    stage = event.get("stage", "")
    if kind == "retrieved":
        return f"round {event.get('round', 0)}: retrieved {event.get('hits', 0)} documents{_ms(event)}"
    if kind == "decision":
        if event.get("stop_reason"):
            plan = ", ".join(event.get("next") or []) or "merge"
            return f"expansion stopped ({event['stop_reason']}); next: {plan}"
        return f"round {event.get('round', 0)}: expanding the query"
    if kind == "round_started":
        return f"expansion round {event.get('round')}: asking the LLM"
    if kind == "stage_started":
        return f"{stage} reranking of {event.get('candidates', 0)} candidates started"
    if kind == "llm_progress":
        return f"{stage}: {event.get('done')}/{event.get('total')} LLM calls"
    if kind == "stage_done":
        failed = f", {event['failures']} failed" if event.get("failures") else ""
        return f"{stage} done ({event.get('llm_calls', 0)} LLM calls{failed}, {event.get('ms', 0):.0f} ms)"
    if kind == "indexed":
        total = event.get("total")
        return f"indexed {event.get('done')}" + (f"/{total}" if total else "") + " documents"
    if event.get("message"):
        return str(event["message"])
    return ", ".join(f"{k}={v}" for k, v in event.items() if k != "event") or str(kind or "working")
