"""The context window of a chat model: the setting when given, else what the endpoint reports.

vLLM (and servers copying it) list each served model under ``GET /v1/models`` with ``max_model_len``;
llama.cpp's server reports ``meta.n_ctx_train`` and ``n_ctx`` in ``/props``. The answer is asked once per
endpoint and model per process. An endpoint that reports nothing gets ``DEFAULT_CONTEXT_WINDOW``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from diver.config import ModelSettings

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_WINDOW = 8192
_FOUND: dict[tuple[str, str], tuple[int, str]] = {}
_LOCK = threading.Lock()


def _reported(body: Any, model: str) -> int | None:
    """``max_model_len`` of ``model`` in a ``/v1/models`` body (the only entry when the id differs)."""
    rows = body.get("data") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        return None
    entries = [r for r in rows if isinstance(r, dict)]
    chosen = [r for r in entries if r.get("id") == model] or (entries if len(entries) == 1 else [])
    for row in chosen:
        value = row.get("max_model_len")
        meta = row.get("meta")
        if value is None and isinstance(meta, dict):
            value = meta.get("n_ctx_train")  # llama.cpp's /v1/models
        if isinstance(value, int) and value >= 512:
            return value
    return None


def probe_context_window(settings: ModelSettings) -> tuple[int | None, str]:
    """(the endpoint's reported window or None, a note saying what happened). Never raises."""
    if not settings.base_url:
        return None, "no base_url: the endpoint is not asked"
    import httpx

    key = settings.api_key.get_secret_value() if settings.api_key is not None else "not-needed"
    url = settings.base_url.rstrip("/") + "/models"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=min(settings.timeout_s, 10))
        response.raise_for_status()
        value = _reported(response.json(), settings.model or "")
    except (httpx.HTTPError, ValueError) as exc:
        return None, f"GET {url} failed ({type(exc).__name__})"
    return value, (f"{url} max_model_len" if value else f"{url} reports no max_model_len")


def context_window(settings: ModelSettings) -> tuple[int, str]:
    """(tokens, source): the setting ('setting'), else the endpoint's report ('endpoint: ...'), else
    ``DEFAULT_CONTEXT_WINDOW`` ('default: why')."""
    if settings.context_window is not None:
        return settings.context_window, "setting"
    key = (settings.base_url or "", settings.model or "")
    with _LOCK:
        if key in _FOUND:
            return _FOUND[key]
    value, note = probe_context_window(settings)
    found = (value, f"endpoint: {note}") if value else (DEFAULT_CONTEXT_WINDOW, f"default: {note}")
    if not value:
        log.info("context window of %s: %s", settings.model, found[1])
    with _LOCK:
        _FOUND[key] = found
    return found


def forget_context_windows() -> None:
    """Drop what endpoints reported (tests; a restarted server with another max_model_len)."""
    with _LOCK:
        _FOUND.clear()
