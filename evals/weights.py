"""DIVER's per-domain hybrid weight for evaluation runs.

DIVER's ``Retriever/merge_scores.py`` (AQ-MedAI/Diver, commit 2ecd1fc) fuses min-max normalised BM25 and
dense scores with ``wgt_dense = 0.7`` for leetcode, pony, aops, theoremqa_theorems and theoremqa_questions,
and 0.5 for the other BRIGHT domains. ``diver eval`` uses those weights unless ``fusion.w_dense`` was set
explicitly (argument, ``DIVER_FUSION__W_DENSE`` or the TOML file); the library default stays 0.5.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from diver.config import DiverSettings

REFERENCE_W_DENSE_DEFAULT = 0.5
REFERENCE_W_DENSE = {
    "leetcode": 0.7,
    "pony": 0.7,
    "aops": 0.7,
    "theoremqa_theorems": 0.7,
    "theoremqa_questions": 0.7,
}
_OFFLINE = {
    "theoremqa-theorems-offline": "theoremqa_theorems",
    "theoremqa-questions-offline": "theoremqa_questions",
}


def reference_w_dense(domain: str) -> float:
    """DIVER's dense weight for a BRIGHT domain (offline TheoremQA sets count as their BRIGHT domain)."""
    name = _OFFLINE.get(domain, domain).strip().lower().replace("-", "_")
    return REFERENCE_W_DENSE.get(name, REFERENCE_W_DENSE_DEFAULT)


def domain_w_dense(domain: str, settings: DiverSettings) -> tuple[float, str]:
    """(weight, where it came from) for ``domain``: an explicit ``fusion.w_dense`` wins over DIVER's."""
    if "w_dense" in settings.fusion.model_fields_set:
        return settings.fusion.w_dense, "fusion.w_dense (set explicitly)"
    return reference_w_dense(domain), "DIVER per-domain reference"


def fusion_record(domains: list[str], settings: DiverSettings) -> dict[str, Any]:
    """What the manifest and report say about hybrid fusion, per domain."""
    if settings.fusion.method != "minmax":
        return {
            d: {"method": settings.fusion.method, "w_dense": None, "source": "n/a (rrf)"} for d in domains
        }
    out: dict[str, Any] = {}
    for domain in domains:
        weight, source = domain_w_dense(domain, settings)
        out[domain] = {"method": "minmax", "w_dense": weight, "source": source}
    return out


@contextmanager
def engine_w_dense(engine: Any, weight: float) -> Iterator[None]:
    """Run the block with ``engine.settings.fusion.w_dense = weight`` (collections read the engine's
    settings at each search); restored afterwards. Engines without settings (test fakes) are left alone."""
    settings = getattr(engine, "settings", None)
    if not isinstance(settings, DiverSettings) or settings.fusion.w_dense == weight:
        yield
        return
    fusion = settings.fusion.model_copy(update={"w_dense": weight})
    engine.settings = settings.model_copy(update={"fusion": fusion})
    try:
        yield
    finally:
        engine.settings = settings
