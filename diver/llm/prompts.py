"""Prompt templates, loaded by name from the ``prompts/`` folder (installed as package ``diver.prompts``).

A template file has a ``[system]`` and a ``[user]`` section; ``$name`` placeholders are filled with
``string.Template`` (values are never re-interpreted, so documents may contain ``$`` or braces).
Retrieved text always goes through ``delimit`` so the model can tell data from instructions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from string import Template

from diver.errors import ConfigError

Message = tuple[str, str]

_SECTION = re.compile(r"^\[(system|user)\]\s*$", re.MULTILINE)
_NAME = re.compile(r"^[a-z0-9_-]+$")


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    system: str
    user: str

    def render(self, **values: object) -> list[Message]:
        """Fill the placeholders; a missing value is a bug and raises ``KeyError``."""
        text = {k: str(v) for k, v in values.items()}
        messages: list[Message] = []
        if self.system:
            messages.append(("system", Template(self.system).substitute(text)))
        messages.append(("user", Template(self.user).substitute(text)))
        return messages


@lru_cache(maxsize=64)
def load_template(name: str) -> PromptTemplate:
    """The template ``prompts/<name>.txt``."""
    if not _NAME.match(name):
        raise ConfigError(f"invalid prompt template name {name!r}")
    resource = resources.files("diver.prompts").joinpath(f"{name}.txt")
    if not resource.is_file():
        raise ConfigError(f"no prompt template {name!r} (expected prompts/{name}.txt)")
    return parse_template(name, resource.read_text(encoding="utf-8"))


def parse_template(name: str, raw: str) -> PromptTemplate:
    parts = _SECTION.split(raw)
    sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if "user" not in sections:
        raise ConfigError(f"prompt template {name!r} has no [user] section")
    return PromptTemplate(name=name, system=sections.get("system", ""), user=sections["user"])


def delimit(text: str, tag: str = "document", label: str | None = None) -> str:
    """Wrap retrieved text in ``<tag>`` markers, neutralising any marker of the same tag inside it."""
    safe = re.sub(rf"<\s*(/?)\s*{tag}\b", rf"<\1{tag}_", text, flags=re.IGNORECASE)
    prefix = f"{label} " if label else ""
    return f"{prefix}<{tag}>\n{safe}\n</{tag}>"
