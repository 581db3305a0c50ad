"""Prompt templates, loaded by name from the ``prompts/`` folder (installed as package ``diver.prompts``).

A template file has a ``[system]`` and a ``[user]`` section; ``$name`` placeholders are filled with
``string.Template`` (values are never re-interpreted, so documents may contain ``$`` or braces).
Retrieved text always goes through ``delimit`` so the model can tell data from instructions.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
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


OPTIONAL_PLACEHOLDERS = frozenset({"count", "topk", "n"})
"""Placeholders an override may leave out (counts the text states anyway); every other one carries data."""
_OVERRIDES: dict[str, Path | None] = {"dir": None}
_OVERRIDES_LOCK = threading.Lock()


def shipped_names() -> list[str]:
    return sorted(r.name[:-4] for r in resources.files("diver.prompts").iterdir() if r.name.endswith(".txt"))


def _shipped(name: str) -> PromptTemplate:
    resource = resources.files("diver.prompts").joinpath(f"{name}.txt")
    if not resource.is_file():
        raise ConfigError(f"no prompt template {name!r} (expected prompts/{name}.txt)")
    return parse_template(name, resource.read_text(encoding="utf-8"))


def placeholders(template: PromptTemplate) -> set[str]:
    """Every ``$name`` / ``${name}`` in the template (``$$`` is a literal dollar)."""
    found: set[str] = set()
    for text in (template.system, template.user):
        for match in Template.pattern.finditer(text):
            name = match.group("named") or match.group("braced")
            if name:
                found.add(name)
    return found


def check_prompt_dir(folder: Path) -> list[str]:
    """The shipped templates ``folder`` overrides (``<name>.txt``). Raises ``ConfigError`` for a file that
    overrides nothing, has no ``[user]`` section, lacks a placeholder the shipped template fills with data,
    or uses one it never fills."""
    if not folder.is_dir():
        raise ConfigError(f"prompts.dir {folder} is not a folder")
    names = shipped_names()
    overridden = []
    for path in sorted(folder.glob("*.txt")):
        name = path.stem
        if name not in names:
            raise ConfigError(f"prompts.dir: {path.name} overrides no prompt; the names are {', '.join(names)}")
        override = parse_template(name, path.read_text(encoding="utf-8"))
        needed, used = placeholders(_shipped(name)), placeholders(override)
        missing = sorted(needed - used - OPTIONAL_PLACEHOLDERS)
        unknown = sorted(used - needed)
        if missing or unknown:
            raise ConfigError(
                f"prompts.dir: {path} " + "; ".join(
                    ([f"lacks ${', $'.join(missing)}"] if missing else [])
                    + ([f"uses ${', $'.join(unknown)}, which {name} never fills"] if unknown else [])
                ) + f" (placeholders of {name}: ${', $'.join(sorted(needed))})"
            )  # fmt: skip
        overridden.append(name)
    return overridden


def use_prompt_dir(folder: Path | None) -> None:
    """Load templates from ``folder`` first (by name), after checking it; None = the shipped ones only."""
    with _OVERRIDES_LOCK:
        if folder == _OVERRIDES["dir"]:
            return
        if folder is not None:
            check_prompt_dir(folder)
        _OVERRIDES["dir"] = folder
        load_template.cache_clear()


@lru_cache(maxsize=64)
def load_template(name: str) -> PromptTemplate:
    """The template ``<prompts.dir>/<name>.txt`` when that folder holds one, else ``prompts/<name>.txt``."""
    if not _NAME.match(name):
        raise ConfigError(f"invalid prompt template name {name!r}")
    folder = _OVERRIDES["dir"]
    if folder is not None and (folder / f"{name}.txt").is_file():
        return parse_template(name, (folder / f"{name}.txt").read_text(encoding="utf-8"))
    return _shipped(name)


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
