"""The optional agent check: ask the LLM whether the current top documents suffice to answer the query."""

from __future__ import annotations

import re
from collections.abc import Sequence

from diver.llm.client import ChatLLM, LLMUsage
from diver.llm.prompts import delimit, load_template
from diver.llm.replies import strip_reasoning

_VERDICT = re.compile(r"sufficient\s*[:=\-]?\s*\**\s*(yes|no)\b", re.IGNORECASE)
_BARE = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def parse_sufficiency(text: str) -> bool | None:
    """True/False from "Sufficient: yes/no" (or a reply starting with yes/no); None when unclear."""
    answer = strip_reasoning(text)
    matches = list(_VERDICT.finditer(answer))
    match = matches[-1] if matches else _BARE.match(answer)
    return None if match is None else match.group(1).lower() == "yes"


async def ask_sufficiency(llm: ChatLLM, query: str, documents: Sequence[str], usage: LLMUsage) -> bool | None:
    """One short LLM call; None when the reply cannot be parsed. Raises ``LLMError`` if the call fails."""
    block = "\n\n".join(delimit(d, label=f"[{i}]") for i, d in enumerate(documents, 1))
    messages = load_template("sufficiency").render(query=query, documents=block)
    return parse_sufficiency(await llm.complete(messages, usage))
