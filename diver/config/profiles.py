"""Profiles: named sets of knob values. ``profile = "reference"`` sets every knob the DIVER reference code
(AQ-MedAI/Diver HEAD 95b111b; its BM25+dense fusion at 2ecd1fc) fixes, each with where the reference sets
it; ``"default"`` is ours. A knob set explicitly (keyword, ``DIVER_*`` env, ``DIVER_CONFIG``) wins over the
profile. ``python -m diver.config.docs profiles`` prints the table of docs/PIPELINE.md.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

Profile = Literal["default", "reference"]


@dataclass(frozen=True)
class Knob:
    key: str  # dotted settings path
    value: Any  # the reference's value
    where: str  # reference file:line
    why: str  # why our default differs (or that it does not)


REFERENCE: tuple[Knob, ...] = (
    # --- DIVER-QExpand (QExpand/qexpand_main.py, run_qexpand.sh, vllm_server/vllm_completion.py)
    Knob("expansion.rounds", 2, "QExpand/run_qexpand.sh:10 (NUM_INTERACTION=2)", "same"),
    Knob("expansion.early_stop", False, "QExpand/qexpand_main.py:310 (range(num_interaction + 1), no stop)",
         "we stop when the top-10 no longer changes (overlap >= 0.9): the next round costs n calls for the "
         "same candidates"),
    Knob("expansion.n", 2, "QExpand/vllm_server/vllm_completion.py:54 (n=2)", "same"),
    Knob("expansion.feedback_k", 5, "QExpand/run_qexpand.sh:11 (KEEP_PASSAGE_NUM=5)", "same"),
    Knob("expansion.passage_tokens", 512, "QExpand/run_qexpand.sh:27 (--max_demo_len 512)", "same"),
    Knob("expansion.passage_tokenizer", "embedder",
         "QExpand/qexpand_main.py:121-125 (truncate_text with the retriever's tokenizer)",
         "approximate tokens: no tokenizer run per passage"),
    Knob("expansion.refine_with", "last", "QExpand/qexpand_main.py:191 (accumulated_query_expansions[-1])",
         "we show the refinement every sample of the last round, not only the last one"),
    Knob("expansion.feedback_retrieval", "dense", "QExpand/qexpand_main.py:170 (do_retrieval, dense model)",
         "same"),
    Knob("llm.expander.temperature", 0.7, "QExpand/run_qexpand.sh:34 (--temperature 0.7)", "same"),
    Knob("llm.expander.max_tokens", 32768, "QExpand/qexpand_main.py:240 (--max_tokens 32768)",
         "4096 bounds the cost of a reasoning model's <think>; a cut reply is recorded and the round kept"),
    Knob("search.assembly", "concat", "QExpand/qexpand_main.py:203 (cur_query + '\\n\\n' + expansions)",
         "'fit': with a short-window embedder QExpand's one text cuts the expansion off (measured in README)"),
    # --- retrieval and fusion (Retriever/retrievers.py, merge_scores.py at 2ecd1fc)
    Knob("bm25.query_side", True, "Retriever/retrievers.py:63 (gensim LuceneBM25Model(k1=0.9, b=0.4))",
         "classic Lucene BM25 ranks the same on short queries and is cheaper per query"),
    Knob("bm25.analyzer", "lucene_english", "Retriever/retrievers.py:60 (pyserini get_lucene_analyzer())",
         "bm25s + PyStemmer tokens: 2.3x faster to tokenize; nDCG@10 on the offline sets is 1.6-3.2 lower"),
    Knob("fusion.candidates", 1000, "Retriever/retrievers.py:47 (num_hits=1000 per retriever)",
         "100 per retriever: the union is reranked to 100 anyway and 1000 costs 10x the fetches"),
    Knob("fusion.missing", "reference", "Retriever/merge_scores.py@2ecd1fc:36-37 (dict.get(did, 0) normalised)",
         "a missing document's raw 0 normalised goes below 0 (a penalty that grows with the list's minimum)"),
    # --- rerankers (Reranker/*.py)
    Knob("rerank.rerank_k", 100, "Reranker/reranker_script.sh:18 (--input_k 100)", "same"),
    Knob("rerank.pointwise_sampling.temperature", 0.6, "Reranker/rerank_pointwise.py:24",
         "0.0: a score should not depend on a draw"),
    Knob("rerank.pointwise_sampling.top_p", 0.9, "Reranker/rerank_pointwise.py:24", "the model's own"),
    Knob("rerank.pointwise_sampling.max_tokens", 128, "Reranker/rerank_pointwise.py:24",
         "the model's (512): a chatty model may explain before the score"),
    Knob("rerank.pointwise_doc_tokens", 15000, "Reranker/rerank_pointwise.py:55 (truncate_text 15000)",
         "doc_tokens (512): 100 calls of up to 15k tokens each per query"),
    Knob("rerank.listwise_sampling.temperature", 0.8, "Reranker/rerank_listwise.py:66",
         "the model's (0.0): a ranking should not depend on a draw"),
    Knob("rerank.listwise_sampling.top_p", 0.8, "Reranker/rerank_listwise.py:67", "the model's own"),
    Knob("rerank.listwise_doc_tokens", 131072, "Reranker/rerank_listwise.py:59 (whole documents, one call)",
         "doc_tokens (512); both send one call when the candidates fit the model's window"),
    Knob("rerank.groupwise.preset", "reference", "Reranker/rerank_groupwise.py:192-194 (10/10/2)", "same"),
    Knob("rerank.groupwise.seed", 666, "Reranker/rerank_groupwise.py:19 (random.seed(666))", "same"),
    Knob("rerank.groupwise.shuffle", "reference", "Reranker/rerank_groupwise.py:123,146 (one RNG, epochs x queries)",
         "per query: a query's groups do not depend on the other queries of the run"),
    Knob("rerank.groupwise.max_tokens", 8000, "Reranker/rerank_groupwise.py:40", "same"),
    Knob("rerank.groupwise.max_doc_chars", 3000, "Reranker/rerank_groupwise.py:195 (--max_doc_len 3000)", "same"),
    Knob("rerank.groupwise.temperature", 0.3, "Reranker/rerank_groupwise.py:40", "same"),
    Knob("rerank.groupwise.top_p", 0.8, "Reranker/rerank_groupwise.py:40", "same"),
)  # fmt: skip
"""The reference profile; ``tests/test_profiles.py`` holds the same values and fails on a silent change."""


def _set_default(data: MutableMapping[str, Any], dotted: str, value: Any) -> None:
    """Set ``dotted`` in nested ``data`` unless a value is already there (explicit settings win)."""
    *sections, name = dotted.split(".")
    node: MutableMapping[str, Any] = data
    for section in sections:
        child = node.get(section)
        if child is None:
            child = node[section] = {}
        elif not isinstance(child, MutableMapping):
            child = node[section] = child.model_dump(exclude_unset=True)  # a section given as a model
        node = child
    node.setdefault(name, value)


def available(knob: Knob, settings_cls: type[BaseModel]) -> bool:
    """Whether ``knob.key`` names a setting of ``settings_cls`` (= DiverSettings); a test requires all of them."""
    model: Any = settings_cls
    for part in knob.key.split("."):
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return False
        model = fields[part].annotation
    return True


def apply_profile(data: MutableMapping[str, Any], settings_cls: type[BaseModel]) -> MutableMapping[str, Any]:
    """``data`` (the raw settings input) with the profile's knobs filled in where not set."""
    if data.get("profile") == "reference":
        for knob in REFERENCE:
            if not available(knob, settings_cls):
                raise ValueError(f"reference profile: no setting {knob.key!r} (a knob was renamed without the profile)")
            _set_default(data, knob.key, knob.value)
    return data


def lookup(settings: Any, dotted: str) -> Any:
    value = settings
    for part in dotted.split("."):
        value = getattr(value, part, None)
    return value


def _cell(value: Any) -> str:
    return f"`{value!r}`" if isinstance(value, str) else f"`{value}`"


def render_table(settings_cls: type[BaseModel]) -> str:
    """knob | reference (file:line) | default | why, from ``REFERENCE`` and the defaults of ``settings_cls``."""
    default = settings_cls.model_construct()  # the defaults only: no env, no DIVER_CONFIG
    lines = ["| Knob | Reference | Reference (file:line) | Default | Why the default |", "|---|---|---|---|---|"]
    for knob in REFERENCE:
        ours = _cell(lookup(default, knob.key))
        lines.append(f"| `{knob.key}` | {_cell(knob.value)} | {knob.where} | {ours} | {knob.why} |")
    return "\n".join(lines) + "\n"

