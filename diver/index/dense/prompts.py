"""Which instruction an embedding model gets in front of queries and documents.

Instruction-tuned retrievers are trained with a query instruction; without it they lose nDCG. The text
comes from, in this order:

1. ``embedding.query_prefix`` / ``embedding.document_prefix`` when set (non-empty): the user's choice;
2. the model's own ``prompts`` (sentence-transformers ``config_sentence_transformers.json``, read by the
   in-process embedder) named ``query`` / ``document`` (``passage`` is accepted for documents);
3. for the ``openai`` provider, whose model files are not here: a preset for the model family below;
4. nothing.

``embedding.model_prompts = false`` skips 2 and 3. Each source is recorded (``EmbeddingPrompts``) in the
collection's meta, every search result (``SearchResult.query_prompt``) and the eval manifest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from diver.config import EmbeddingSettings

# Qwen3-Embedding's default retrieval instruction, also Diver-Retriever's: AQ-MedAI/Diver README
# (`model.encode(queries, prompt_name="query")`) and the Qwen/Qwen3-Embedding-4B model card
# (config_sentence_transformers.json: prompts.query); documents get no instruction.
_QWEN3_QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"

# (pattern over the lower-cased model id, query prompt, document prompt, where it comes from)
FAMILY_PRESETS: tuple[tuple[str, str, str, str], ...] = (
    # https://huggingface.co/AQ-MedAI/Diver-Retriever-4B: "Instruct: {task}\nQuery:{query}" with the
    # web-search task; the same text as its config_sentence_transformers.json "query" prompt.
    (r"diver-retriever", _QWEN3_QUERY, "", "preset: Diver-Retriever model card"),
    # https://huggingface.co/Qwen/Qwen3-Embedding-8B: get_detailed_instruct(task, query) =
    # f"Instruct: {task}\nQuery:{query}"; documents are encoded without an instruction.
    (r"qwen3-embedding", _QWEN3_QUERY, "", "preset: Qwen3-Embedding model card"),
    # https://huggingface.co/BAAI/bge-reasoner-embed-qwen3-8b-0923 (and hanhainebula/reason-embed-*):
    # FlagLLMModel(query_instruction_format="Instruct: {}\nQuery: {}"); the card's task is per
    # benchmark domain, the generic retrieval task is used here; documents without an instruction.
    (r"bge-reasoner-embed|reason-embed",
     "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ", "",
     "preset: BGE-Reasoner-Embed model card"),
    # https://huggingface.co/reasonir/ReasonIR-8B: model.encode(query, instruction="") and
    # encode(document, instruction=""): the card's general usage passes empty instructions.
    (r"reasonir", "", "", "preset: ReasonIR-8B model card (empty instructions)"),
    # https://huggingface.co/intfloat/e5-large-v2 (and multilingual-e5-*): "Each input text should start
    # with 'query: ' or 'passage: '". The instruct variant (e5-mistral, multilingual-e5-*-instruct)
    # takes the Qwen-style "Instruct: ...\nQuery: " and no document prefix.
    (r"e5-mistral|e5-.*instruct",
     "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ", "",
     "preset: e5-instruct model card"),
    (r"(^|/)(multilingual-)?e5-", "query: ", "passage: ", "preset: e5 model card"),
)  # fmt: skip


@dataclass(frozen=True)
class EmbeddingPrompts:
    """The query and document prefixes in use and where each came from."""

    query: str = ""
    document: str = ""
    query_source: str = "none"
    document_source: str = "none"

    def record(self) -> dict[str, Any]:
        return asdict(self)


def family_preset(model: str) -> tuple[str, str, str] | None:
    """(query, document, source) of the first preset whose pattern matches ``model``, else None."""
    name = model.lower()
    for pattern, query, document, source in FAMILY_PRESETS:
        if re.search(pattern, name):
            return query, document, source
    return None


def resolve_prompts(settings: EmbeddingSettings, declared: Mapping[str, str] | None, *,
                    presets: bool = False) -> EmbeddingPrompts:  # fmt: skip
    """The prompts of this model: set prefixes first, then the model's declared ``prompts`` (when
    ``settings.model_prompts``), then (``presets``: the openai provider) its family preset."""
    query = document = ""
    query_source = document_source = "none"
    if settings.model_prompts:
        found = dict(declared or {})
        if "query" in found:
            query, query_source = found["query"], "model prompts: query"
        for name in ("document", "passage"):
            if name in found:
                document, document_source = found[name], f"model prompts: {name}"
                break
        preset = family_preset(settings.model) if presets and not found else None
        if preset is not None:
            query, document = preset[0], preset[1]
            query_source = document_source = preset[2]
    if settings.query_prefix:
        query, query_source = settings.query_prefix, "embedding.query_prefix"
    if settings.document_prefix:
        document, document_source = settings.document_prefix, "embedding.document_prefix"
    return EmbeddingPrompts(query, document, query_source, document_source)
