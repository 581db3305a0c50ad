"""Reading LLM replies: the answer that follows a model's ``<think>`` reasoning, and whether it was cut.

Every stage that parses a reply (expansion, the rerankers' parsers, MCP sampling) reads it through here.
"""

from __future__ import annotations

import re

_THINK_END = re.compile(r"</\s*think\s*>", re.IGNORECASE)
_THINK_START = re.compile(r"<\s*think\s*>", re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """Keep what follows the final ``</think>``; an unclosed ``<think>`` (cut mid-reasoning) gives ''."""
    ends = list(_THINK_END.finditer(text))
    if ends:
        return text[ends[-1].end() :].strip()
    if _THINK_START.search(text):
        return ""
    return text.strip()


def cut_in_reasoning(text: str) -> bool:
    """True when ``text`` opens a ``<think>`` section that never closes: the reply stopped mid-reasoning."""
    return bool(_THINK_START.search(text)) and not _THINK_END.search(text)
