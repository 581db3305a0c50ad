"""Benchmarks: the model, BRIGHT loaders (hub, local folder, vendored query side), offline TheoremQA sets."""

from diver.datasets.bright import (
    DOMAINS,
    HubSource,
    LocalSource,
    VendoredSource,
    load_bright,
    load_rewrites,
    load_vendored_queries,
    normalize_domain,
    parse_source,
)
from diver.datasets.model import NOT_COMPARABLE, Benchmark, Corpus, find_data_root, parse_id_list
from diver.datasets.theoremqa import OFFLINE_BENCHMARKS, QUESTIONS, THEOREMS, build_offline

__all__ = [
    "DOMAINS",
    "NOT_COMPARABLE",
    "OFFLINE_BENCHMARKS",
    "QUESTIONS",
    "THEOREMS",
    "Benchmark",
    "Corpus",
    "HubSource",
    "LocalSource",
    "VendoredSource",
    "build_offline",
    "find_data_root",
    "load_bright",
    "load_rewrites",
    "load_vendored_queries",
    "normalize_domain",
    "parse_id_list",
    "parse_source",
]
