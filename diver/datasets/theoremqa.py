"""Two offline, reasoning-intensive retrieval sets built from the vendored BRIGHT and TheoremQA files.

Their scores are NOT comparable to published BRIGHT numbers (different, much smaller corpora).

* ``theoremqa-theorems-offline``: the 76 BRIGHT theoremqa_theorems queries against the 354 theorem
  definitions of ``all_theorems.json``; relevant = the theorem named by the TheoremQA problem whose id is
  the query id without ``TheoremQA_`` (case-insensitive name match).
* ``theoremqa-questions-offline``: the 194 BRIGHT theoremqa_questions queries against the 800 TheoremQA
  problems (``TheoremQA_<id>``: question, newline, ``Answer: <answer>``); relevant = the query's BRIGHT
  ``gold_ids`` found in this corpus; excluded = its BRIGHT ``excluded_ids``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from diver.datasets.bright import VendoredSource
from diver.datasets.model import (
    Benchmark,
    Corpus,
    find_data_root,
    label_rows,
    parse_id_list,
    sha256_file,
)
from diver.errors import InputError
from diver.text.documents import Document, make_document

log = logging.getLogger(__name__)

THEOREMS = "theoremqa-theorems-offline"
QUESTIONS = "theoremqa-questions-offline"
OFFLINE_BENCHMARKS = (THEOREMS, QUESTIONS)
ID_PREFIX = "TheoremQA_"


def theorem_id(name: str) -> str:
    """Stable id of a theorem: ``theorem/`` + its name with whitespace runs turned into ``_``.

    Unique over all_theorems.json (a lower-cased slug is not: 'Poincare-Theorem' vs 'Poincare theorem'),
    and free of whitespace, which TREC run files cannot hold.
    """
    return "theorem/" + re.sub(r"\s+", "_", name.strip())


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"TheoremQA file missing: {path}")
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _bright_rows(data_root: Path, domain: str) -> tuple[list[Mapping[str, Any]], dict[str, str]]:
    source = VendoredSource(data_root)
    return list(source.rows("examples", domain)), source.fingerprint("examples", domain)


def build_theorems(data_root: Path | None = None) -> Benchmark:
    """``theoremqa-theorems-offline``: 76 queries, 354 theorems, one relevant theorem per query."""
    root = find_data_root(data_root)
    theorems_path, problems_path = (
        root / "theoremqa" / "all_theorems.json",
        root / "theoremqa" / "theoremqa_test.json",
    )
    theorems: dict[str, str] = _load_json(theorems_path)
    problems = {str(p["id"]): p for p in _load_json(problems_path)}
    by_lower: dict[str, str] = {}
    for name in theorems:
        if name.lower() in by_lower:
            raise InputError(f"two theorems share the name {name!r} case-insensitively")
        by_lower[name.lower()] = name
    docs = [
        make_document(theorem_id(name), f"{name}\n{text}", {"theorem": name})
        for name, text in theorems.items()
    ]
    if len({d.id for d in docs}) != len(docs):
        raise InputError("theorem ids collide")
    rows, sources = _bright_rows(root, "theoremqa_theorems")

    def matched_theorem(row: Mapping[str, Any]) -> list[str]:
        problem = problems.get(str(row["id"]).removeprefix(ID_PREFIX))
        matched = by_lower.get(str(problem.get("theorem", "")).strip().lower()) if problem else None
        return [theorem_id(matched)] if matched else []

    labels = label_rows(
        rows,
        matched_theorem,
        lambda qid, rel, _: (
            None if rel else f"query {qid}: no TheoremQA problem or theorem match, no relevant document"
        ),
    )
    queries, qrels, notes = labels.queries, labels.qrels, labels.notes
    sources.update(
        {str(theorems_path): sha256_file(theorems_path), str(problems_path): sha256_file(problems_path)}
    )
    return Benchmark(
        name=THEOREMS,
        domain=THEOREMS,
        queries=queries,
        corpus=Corpus.of(docs),
        qrels=qrels,
        excluded={q: set() for q in queries},
        comparable_to_bright=False,
        sources=sources,
        notes=notes,
    )


def problem_document(problem: dict[str, Any]) -> Document:
    """A TheoremQA problem as a document: ``TheoremQA_<id>``, question, newline, ``Answer: <answer>``."""
    return make_document(
        ID_PREFIX + str(problem["id"]),
        f"{problem['Question']}\nAnswer: {problem['Answer']}",
        {"theorem": str(problem.get("theorem", "")), "field": str(problem.get("field", ""))},
    )


def build_questions(data_root: Path | None = None) -> Benchmark:
    """``theoremqa-questions-offline``: 194 queries, 800 problems, BRIGHT gold ids within this corpus."""
    root = find_data_root(data_root)
    problems_path = root / "theoremqa" / "theoremqa_test.json"
    docs = [problem_document(p) for p in _load_json(problems_path)]
    corpus_ids = {d.id for d in docs}
    if len(corpus_ids) != len(docs):
        raise InputError("duplicate TheoremQA problem ids")
    rows, sources = _bright_rows(root, "theoremqa_questions")
    labels = label_rows(
        rows,
        lambda row: [d for d in parse_id_list(row.get("gold_ids")) if d in corpus_ids],
        lambda qid, rel, _: (
            None
            if rel
            else f"query {qid}: none of its BRIGHT gold_ids is in the corpus, no relevant document"
        ),
    )
    queries, qrels, excluded, notes = labels.queries, labels.qrels, labels.excluded, labels.notes
    sources[str(problems_path)] = sha256_file(problems_path)
    return Benchmark(
        name=QUESTIONS,
        domain=QUESTIONS,
        queries=queries,
        corpus=Corpus.of(docs),
        qrels=qrels,
        excluded=excluded,
        comparable_to_bright=False,
        sources=sources,
        notes=notes,
    )


def build_offline(name: str, data_root: Path | None = None) -> Benchmark:
    if name == THEOREMS:
        return build_theorems(data_root)
    if name == QUESTIONS:
        return build_questions(data_root)
    raise InputError(f"unknown offline benchmark {name!r}; known: {', '.join(OFFLINE_BENCHMARKS)}")
