"""BRIGHT (xlangai/BRIGHT): from the Hugging Face hub, from a local copy, or its query side vendored here.

Protocol as BRIGHT's reference: binary qrels from ``gold_ids`` (``gold_ids_long`` with long documents),
each query's ``excluded_ids`` removed from its ranking before any cutoff. Query text is the ``query``
field of ``examples`` (or of a ``*_reason`` config, whose ``query`` is an LLM's reasoning about the query);
the ``reasoning`` and ``gold_answer`` fields are never used as query text: annotators wrote them after
seeing the gold documents.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from diver.datasets.model import (
    Benchmark,
    Corpus,
    find_data_root,
    label_rows,
    parse_id_list,
    sha256_file,
)
from diver.errors import InputError, StateError, require
from diver.text.documents import Document, make_document
from diver.text.jsonl import read_jsonl

log = logging.getLogger(__name__)

HF_DATASET = "xlangai/BRIGHT"
DOMAINS: tuple[str, ...] = (
    "biology",
    "earth_science",
    "economics",
    "psychology",
    "robotics",
    "stackoverflow",
    "sustainable_living",
    "leetcode",
    "pony",
    "aops",
    "theoremqa_questions",
    "theoremqa_theorems",
)
NO_LONG_DOCUMENTS = frozenset({"leetcode", "aops", "theoremqa_theorems", "theoremqa_questions"})
QUERY_CONFIGS = ("examples", "gpt4_reason", "claude-3-opus_reason", "llama3-70b_reason")
"""Known configs with one query per row; any other ``*_reason`` config is accepted too."""

Row = Mapping[str, Any]


def normalize_domain(name: str) -> str:
    """BRIGHT's spelling of a domain (underscores); accepts the vendored hyphenated form."""
    domain = name.strip().lower().replace("-", "_")
    if domain not in DOMAINS:
        raise InputError(f"unknown BRIGHT domain {name!r}; known: {', '.join(DOMAINS)}")
    return domain


def check_query_config(config: str) -> str:
    if config == "examples" or config.endswith("_reason"):
        return config
    raise InputError(
        f"{config!r} is not a BRIGHT query config (examples or *_reason, e.g. {QUERY_CONFIGS[1]})"
    )


class BrightSource(Protocol):
    """Where BRIGHT rows come from: one table per (config, domain)."""

    label: str

    def rows(self, config: str, domain: str) -> Iterable[Row]: ...

    def fingerprint(self, config: str, domain: str) -> dict[str, str]: ...

    def has(self, config: str, domain: str) -> bool: ...


class HubSource:
    """``datasets.load_dataset("xlangai/BRIGHT", config, split=domain)`` (needs the hub, extra [eval])."""

    def __init__(self, dataset: str = HF_DATASET, cache_dir: Path | None = None) -> None:
        self.dataset = dataset
        self.cache_dir = cache_dir
        self.label = f"hf:{dataset}"
        self._fingerprints: dict[tuple[str, str], str] = {}

    def rows(self, config: str, domain: str) -> Iterable[Row]:
        datasets = require("datasets", "eval", "Loading BRIGHT from the Hugging Face hub")
        kwargs: dict[str, Any] = {"split": domain}
        if self.cache_dir is not None:
            kwargs["cache_dir"] = str(self.cache_dir)
        try:
            table: Iterable[Row] = datasets.load_dataset(self.dataset, config, **kwargs)
        except (OSError, ValueError) as exc:  # ConnectionError, offline mode, dataset or split not found
            raise StateError(
                f"cannot load {self.dataset} {config}/{domain} from the Hugging Face hub ({exc}); "
                "offline, use --bright-source local:PATH with a copy of the dataset"
            ) from exc
        self._fingerprints[(config, domain)] = str(getattr(table, "_fingerprint", "") or "")
        return table

    def fingerprint(self, config: str, domain: str) -> dict[str, str]:
        value = self._fingerprints.get((config, domain), "")
        return {f"{self.dataset}/{config}/{domain}": f"datasets-fingerprint:{value}" if value else "unknown"}

    def has(self, config: str, domain: str) -> bool:
        return True


class LocalSource:
    """A local copy in the hub's layout: ``<root>/<config>/<domain>*.parquet`` (or ``.jsonl``, ``.jsonl.gz``).

    The domain part of a file name may use underscores or hyphens.
    """

    SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".json")

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise InputError(f"BRIGHT folder {self.root} does not exist")
        self.label = f"local:{self.root}"

    def files(self, config: str, domain: str) -> list[Path]:
        folder = self.root / config
        if not folder.is_dir():
            return []
        names = {domain, domain.replace("_", "-")}
        found = []
        for path in sorted(folder.iterdir()):
            stem = path.name
            if not any(stem.endswith(s) for s in self.SUFFIXES):
                continue
            if any(
                stem == n + s or stem.startswith(n + "-0") or stem.startswith(n + ".")
                for n in names
                for s in self.SUFFIXES
            ):
                found.append(path)
        return found

    def has(self, config: str, domain: str) -> bool:
        return bool(self.files(config, domain))

    def rows(self, config: str, domain: str) -> Iterator[Row]:
        files = self.files(config, domain)
        if not files:
            raise InputError(
                f"no {config} file for {domain} under {self.root / config} "
                f"(expected {domain}.parquet, {domain}.jsonl or {domain}-00000-of-00001.parquet)"
            )
        for path in files:
            yield from _read_table(path)

    def fingerprint(self, config: str, domain: str) -> dict[str, str]:
        return {str(p): sha256_file(p) for p in self.files(config, domain)}


class VendoredSource:
    """The query side vendored in ``data/bright`` (``examples`` only; no documents)."""

    def __init__(self, data_root: Path | None = None) -> None:
        self.root = find_data_root(data_root) / "bright"
        self.label = f"vendored:{self.root}"

    def path(self, domain: str) -> Path:
        return self.root / "topics" / f"topics.bright-{domain.replace('_', '-')}-original.jsonl.gz"

    def has(self, config: str, domain: str) -> bool:
        return config == "examples" and self.path(domain).is_file()

    def rows(self, config: str, domain: str) -> Iterator[Row]:
        if config != "examples":
            raise InputError(f"the vendored BRIGHT copy has only the query side ('examples'), not {config!r}")
        path = self.path(domain)
        if not path.is_file():
            raise InputError(f"vendored BRIGHT topics missing: {path}")
        yield from _read_table(path)

    def fingerprint(self, config: str, domain: str) -> dict[str, str]:
        path = self.path(domain)
        return {str(path): sha256_file(path)} if path.is_file() else {}


def _read_table(path: Path) -> Iterator[Row]:
    if path.name.endswith(".parquet"):
        pq = require("pyarrow.parquet", "eval", "Reading BRIGHT parquet files")
        yield from pq.read_table(path).to_pylist()
        return
    if path.name.endswith(".json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        yield from (data if isinstance(data, list) else data.get("rows", []))
        return
    yield from (row for _, row in read_jsonl(path))


def parse_source(spec: str, data_root: Path | None = None) -> BrightSource:
    """``hf`` (or ``hf:<dataset>``), ``local:<folder>``, ``vendored``, or a folder holding a copy in the hub's
    layout with its dataset card (``README.md``): read by ``datasets.load_dataset(<folder>)``, the hub's code
    path (``diver.datasets.bright_layout`` builds one offline)."""
    if spec == "hf":
        return HubSource()
    folder = Path(spec).expanduser()
    if folder.is_dir() and (folder / "README.md").is_file():
        return HubSource(str(folder.resolve()))
    if spec.startswith("hf:"):
        return HubSource(spec[3:])
    if spec.startswith("local:"):
        return LocalSource(Path(spec[6:]))
    if spec == "vendored":
        return VendoredSource(data_root)
    raise InputError(
        f"unknown BRIGHT source {spec!r}: use hf, hf:<dataset>, local:<folder>, vendored, or a folder in the "
        "hub's layout with its README.md"
    )


def _query_rows(
    source: BrightSource, config: str, domain: str, data_root: Path | None
) -> tuple[BrightSource, list[Row]]:
    """Query rows from the source, falling back to the vendored copy for a local folder without them."""
    if not source.has(config, domain) and config == "examples":
        log.info("no examples for %s in %s: using the vendored query side", domain, source.label)
        source = VendoredSource(data_root)
    return source, list(source.rows(config, domain))


def load_rewrites(source: BrightSource, config: str, domain: str) -> dict[str, str]:
    """Query texts of a BRIGHT query config (e.g. ``gpt4_reason``): id -> ``query`` field."""
    check_query_config(config)
    return {str(row["id"]): str(row["query"]) for row in source.rows(config, normalize_domain(domain))}


def load_bright(
    domain: str,
    source: BrightSource,
    *,
    long: bool = False,
    query_config: str = "examples",
    data_root: Path | None = None,
    with_corpus: bool = True,
) -> Benchmark:
    """One BRIGHT domain: queries (``query`` field), qrels, excluded ids and the (lazy) corpus."""
    domain = normalize_domain(domain)
    check_query_config(query_config)
    if long and domain in NO_LONG_DOCUMENTS:
        raise InputError(f"BRIGHT has no long documents for {domain}")
    query_source, rows = _query_rows(source, "examples", domain, data_root)
    gold_key = "gold_ids_long" if long else "gold_ids"
    labels = label_rows(
        rows,
        lambda row: parse_id_list(row.get(gold_key)),
        lambda qid, gold, excluded: (
            f"query {qid}: ids both gold and excluded: {sorted(gold & excluded)[:3]}"
            if gold & excluded
            else None
        ),
    )
    queries, qrels, excluded, notes = labels.queries, labels.qrels, labels.excluded, labels.notes
    sources = query_source.fingerprint("examples", domain)
    if query_config != "examples":
        rewrites = load_rewrites(source, query_config, domain)
        sources.update(source.fingerprint(query_config, domain))
        missing = [q for q in queries if q not in rewrites]
        if missing:
            raise InputError(f"{query_config}/{domain}: no query for {len(missing)} ids (e.g. {missing[:3]})")
        queries = {q: rewrites[q] for q in queries}
        notes.append(f"query texts from BRIGHT config {query_config}")
    corpus_config = "long_documents" if long else "documents"
    if with_corpus and not source.has(corpus_config, domain):
        raise InputError(
            f"{source.label} has no {corpus_config} for {domain}: BRIGHT corpora come from the hub "
            "(--bright-source hf) or a local copy (--bright-source local:PATH)"
        )
    corpus = (
        Corpus(
            lambda: _documents(source, corpus_config, domain),
            fingerprint=lambda: source.fingerprint(corpus_config, domain),
        )
        if with_corpus
        else Corpus.of([])
    )
    return Benchmark(
        name="bright",
        domain=domain,
        queries=queries,
        corpus=corpus,
        qrels=qrels,
        excluded=excluded,
        comparable_to_bright=True,
        sources=sources,
        notes=notes,
    )


def _documents(source: BrightSource, config: str, domain: str) -> Iterator[Document]:
    skipped = 0
    for row in source.rows(config, domain):
        try:
            yield make_document(str(row["id"]), row.get("content") or "")
        except InputError as exc:
            skipped += 1
            log.warning("BRIGHT %s/%s: skipped a document: %s", config, domain, exc)
    if skipped:
        log.warning("BRIGHT %s/%s: %d documents skipped (empty or invalid)", config, domain, skipped)


def load_vendored_queries(domain: str, *, long: bool = False, data_root: Path | None = None) -> Benchmark:
    """The vendored query side of one domain (no corpus): for inspection and for local corpora."""
    return load_bright(domain, VendoredSource(data_root), long=long, data_root=data_root, with_corpus=False)
