"""A local copy of BRIGHT in the hub's exact layout (``xlangai/BRIGHT``), built offline.

The hub's repository holds one parquet file per config and domain split, ``<config>/<domain>-00000-of-00001.parquet``,
and a dataset card (``README.md``) whose ``configs:`` block names each config's split files; that card is
what ``datasets.load_dataset(<repo or folder>, <config>, split=<domain>)`` reads. This builder writes the same
layout from what is at hand offline:

* ``examples``: all 12 domains, the vendored query side (``data/bright/topics``), fields as published;
* ``documents``: ``theoremqa_questions`` = the 800 TheoremQA problems under their BRIGHT ids
  (``TheoremQA_<id>``; question and answer as the text: a proxy, not BRIGHT's texts) and
  ``theoremqa_theorems`` = each query's BRIGHT gold ids carrying the text of the theorem its TheoremQA
  problem names, plus every other theorem as ``theorem/<name>`` (a proxy for BRIGHT's theorem corpus);
* ``long_documents``: none (BRIGHT has no long documents for the theoremqa domains);
* ``*_reason``: none (the LLM-written reasoning queries are not vendored).

Scores on this copy are NOT comparable to published BRIGHT numbers; it exists to run the hub's code path
(``--bright-source <folder>``) for real. ``python -m diver.datasets.bright_layout OUT`` writes it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from diver.datasets.bright import DOMAINS, VendoredSource
from diver.datasets.model import find_data_root
from diver.datasets.theoremqa import ID_PREFIX, problem_document, theorem_id
from diver.errors import require

SHARD = "-00000-of-00001.parquet"
LIST_FIELDS = ("gold_ids", "gold_ids_long", "excluded_ids")


def _example_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A published ``examples`` row: strings, and lists of strings for the id fields."""
    out: dict[str, Any] = {k: str(row.get(k, "")) for k in ("id", "query", "reasoning", "gold_answer")}
    for key in LIST_FIELDS:
        value = row.get(key) or []
        out[key] = [str(v) for v in (value if isinstance(value, list) else [value])]
    return out


def _theorem_documents(root: Path) -> list[dict[str, str]]:
    theorems: dict[str, str] = json.loads((root / "theoremqa" / "all_theorems.json").read_text(encoding="utf-8"))
    problems = {str(p["id"]): p for p in json.loads((root / "theoremqa" / "theoremqa_test.json").read_text("utf-8"))}
    by_lower = {name.lower(): name for name in theorems}
    docs: dict[str, dict[str, str]] = {}
    used: set[str] = set()
    for row in VendoredSource(root).rows("examples", "theoremqa_theorems"):
        problem = problems.get(str(row["id"]).removeprefix(ID_PREFIX)) or {}
        name = by_lower.get(str(problem.get("theorem", "")).strip().lower())
        if name is None:
            continue
        used.add(name)
        for gold in row.get("gold_ids") or []:
            docs.setdefault(str(gold), {"id": str(gold), "content": f"{name}\n{theorems[name]}"})
    for name, text in theorems.items():
        if name not in used:
            docs[theorem_id(name)] = {"id": theorem_id(name), "content": f"{name}\n{text}"}
    return list(docs.values())


def _question_documents(root: Path) -> list[dict[str, str]]:
    problems = json.loads((root / "theoremqa" / "theoremqa_test.json").read_text(encoding="utf-8"))
    return [{"id": d.id, "content": d.text} for d in map(problem_document, problems)]


def _card(files: dict[str, list[str]]) -> str:
    lines = ["---", "license: cc-by-4.0", "configs:"]
    for config, splits in files.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {config}/{split}{SHARD}" for split in splits]
    lines += ["---", "", "A local copy of xlangai/BRIGHT in the hub's layout, built by diver.datasets.bright_layout",
              "(queries vendored; documents are TheoremQA proxies: NOT comparable to published BRIGHT numbers).", ""]
    return "\n".join(lines)


def build_hub_layout(out: Path, data_root: Path | None = None) -> dict[str, list[str]]:
    """Write the copy under ``out``; returns {config: [domain splits]}."""
    pa = require("pyarrow", "eval", "Writing BRIGHT parquet files")
    pq = require("pyarrow.parquet", "eval", "Writing BRIGHT parquet files")
    root = find_data_root(data_root)
    tables: dict[str, dict[str, list[dict[str, Any]]]] = {
        "examples": {d: [_example_row(r) for r in VendoredSource(root).rows("examples", d)] for d in DOMAINS},
        "documents": {"theoremqa_questions": _question_documents(root),
                      "theoremqa_theorems": _theorem_documents(root)},
    }  # fmt: skip
    for config, splits in tables.items():
        (out / config).mkdir(parents=True, exist_ok=True)
        for split, rows in splits.items():
            pq.write_table(pa.Table.from_pylist(rows), out / config / f"{split}{SHARD}")
    files = {config: list(splits) for config, splits in tables.items()}
    (out / "README.md").write_text(_card(files), encoding="utf-8")
    return files


if __name__ == "__main__":  # pragma: no cover - a command-line convenience
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bright-hub-layout")
    sys.stdout.write(json.dumps(build_hub_layout(target), indent=1) + "\n")
