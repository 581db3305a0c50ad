"""The one registry of rerankers: every consumer (graph nodes, merge, MCP enum, ``diver eval``, config
checks, the docs table) reads it. A new reranker registers its ``RerankerSpec`` from its own module::

    from diver.stages.rerank.registry import register
    register(RerankerSpec(name="mine", description="...", run=run_mine, default_weight=0.3))

Built-ins are registered here, in this order (the merge's order): pointwise, listwise, groupwise,
cross_encoder. Names are identifiers (they are state keys and settings attributes); the old spelling
``cross-encoder`` is accepted at input boundaries through ``diver.config.rerank.canonical_reranker``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from diver.config.rerank import RerankSettings, canonical_reranker
from diver.errors import ConfigError
from diver.stages.rerank import cross_encoder, groupwise, listwise, pointwise
from diver.stages.rerank.base import NODE_PREFIX, RerankerSpec, node_name

_SPECS: dict[str, RerankerSpec] = {}


def register(spec: RerankerSpec) -> RerankerSpec:
    """Add ``spec``; a duplicate name or one that is not an identifier is a ``ConfigError``."""
    if not spec.name.isidentifier():
        raise ConfigError(f"reranker name {spec.name!r} must be an identifier (letters, digits, '_')")
    if spec.name in _SPECS:
        raise ConfigError(f"a reranker named {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registered reranker (tests and plugins that register temporarily)."""
    _SPECS.pop(name, None)


def names() -> list[str]:
    return list(_SPECS)


def specs() -> list[RerankerSpec]:
    return list(_SPECS.values())


def get(name: str) -> RerankerSpec:
    """The spec of ``name`` (old spellings accepted); unknown: a ``ConfigError`` naming the known ones."""
    canonical = canonical_reranker(name)
    spec = _SPECS.get(canonical)
    if spec is None:
        close = difflib.get_close_matches(canonical, names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown reranker {name!r}{hint}; known: {', '.join(names())}")
    return spec


def check(asked: Iterable[str] | None) -> list[str] | None:
    """Canonical names of ``asked`` (None stays None), each checked against the registry."""
    return None if asked is None else [get(n).name for n in asked]


def spec_of_node(node: str) -> RerankerSpec | None:
    """The reranker whose graph node is ``node`` (None for the other nodes)."""
    name = node[len(NODE_PREFIX) :] if node.startswith(NODE_PREFIX) else ""
    spec = _SPECS.get(name)
    return spec if spec is not None and spec.node == node else None


def merge_weights(rerank: RerankSettings) -> dict[str, float]:
    """Merge weight of every rank-merged reranker, the one place they are resolved: ``rerank.weights[name]``,
    else the ``rerank.<name>_weight`` knob (pointwise, listwise, groupwise), else the spec's default."""
    out: dict[str, float] = {}
    for spec in specs():
        if spec.first_pass:
            continue
        knob = getattr(rerank, f"{spec.name}_weight", None)
        default = spec.default_weight if knob is None else knob
        out[spec.name] = float(rerank.weights.get(spec.name, default))  # type: ignore[arg-type]
    return out


for _builtin in (pointwise.SPEC, listwise.SPEC, groupwise.SPEC, cross_encoder.SPEC):
    register(_builtin)

__all__ = ["RerankerSpec", "check", "get", "merge_weights", "names", "node_name", "register", "specs",
           "spec_of_node", "unregister"]  # fmt: skip
