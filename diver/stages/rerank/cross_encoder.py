"""A local cross-encoder reranker: any sentence-transformers ``CrossEncoder`` (id or folder), on the GPU
when there is one (float16/bfloat16), on the CPU otherwise (float32). Pairs are scored in batches sorted
by length (little padding); the score is blended with the retrieval score like pointwise.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from diver.config.rerank import CrossEncoderSettings, RerankSettings
from diver.errors import ConfigError, DiverError, require
from diver.fusion import min_max_normalise
from diver.hits import SearchHit
from diver.index.dense.embedders import pick_device, pick_dtype
from diver.stages.rerank.base import RerankerSpec, RerankRequest, RerankResult
from diver.stages.rerank.texts import clean_document

log = logging.getLogger(__name__)

_MODELS: dict[tuple[str, str, str, int], Any] = {}
_LOCK = threading.Lock()


class CrossEncoderError(DiverError):
    """The cross-encoder could not be loaded or failed while scoring."""


class CrossEncoderResult(RerankResult):
    order: list[str] = Field(description="Candidates by blended score, best first.")
    model_scores: dict[str, float] = Field(description="The cross-encoder's score per candidate.")
    combined: dict[str, float] = Field(description="blend * model score + (1 - blend) * retrieval score.")
    model: str = ""
    device: str = ""
    dtype: str = ""
    pairs: int = 0
    batches: int = 0
    pairs_per_s: float = 0.0

    def hit_scores(self, doc_id: str) -> dict[str, float]:
        if doc_id not in self.combined:
            return {}
        return {"cross_encoder": self.combined[doc_id], "cross_encoder_model": self.model_scores[doc_id]}

    def blended(self) -> dict[str, float]:
        return dict(self.combined)


def load_cross_encoder(settings: CrossEncoderSettings) -> tuple[Any, str, str]:
    """The model (loaded once per process for each model/device/dtype/max_length), its device and dtype."""
    if not settings.model:
        raise ConfigError("no cross-encoder model configured (set rerank.cross_encoder.model)")
    device = pick_device(settings.device)
    dtype = pick_dtype(settings.dtype, device)
    key = (settings.model, device, dtype, settings.max_length)
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            st = require("sentence_transformers", purpose="the cross-encoder reranker")
            torch = require("torch", purpose="the cross-encoder reranker")
            try:
                model = st.CrossEncoder(settings.model, device=device, max_length=settings.max_length)
            except (OSError, ValueError, RuntimeError) as exc:
                raise CrossEncoderError(f"cannot load cross-encoder {settings.model!r}: {exc}") from exc
            if dtype != "float32":
                model = model.to(getattr(torch, dtype))
            model.eval()
            _MODELS[key] = model
    return model, device, dtype


def score_pairs(model: Any, query: str, texts: Sequence[str], batch_size: int) -> tuple[list[float], int]:
    """Model scores of (query, text) pairs in input order; batches run over the pairs sorted by length."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    scores = [0.0] * len(texts)
    batches = 0
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        try:
            values = model.predict(
                [(query, texts[i]) for i in chunk], batch_size=len(chunk), show_progress_bar=False,
                convert_to_numpy=True,
            )  # fmt: skip
        except (RuntimeError, ValueError) as exc:
            raise CrossEncoderError(f"cross-encoder scoring failed: {exc}") from exc
        batches += 1
        for i, value in zip(chunk, values, strict=True):
            scores[i] = float(value.max() if getattr(value, "ndim", 0) else value)
    return scores, batches


def blend_scores(
    model_scores: dict[str, float], retrieval: dict[str, float], blend: float, mode: str = "reference"
) -> dict[str, float]:
    """``blend * model + (1 - blend) * retrieval``. Model scores outside [0, 1] (raw logits) and, in
    ``renormalised`` mode, retrieval scores are min-max normalised over the candidates first."""
    inside = all(0.0 <= v <= 1.0 for v in model_scores.values())
    model = dict(model_scores) if inside else min_max_normalise(model_scores)
    scale = dict(retrieval) if mode == "reference" else min_max_normalise(retrieval)
    return {d: blend * model[d] + (1.0 - blend) * scale[d] for d in model_scores}


def rerank_cross_encoder(
    query: str,
    candidates: Sequence[SearchHit],
    texts: dict[str, str],
    settings: CrossEncoderSettings,
    mode: str = "reference",
) -> CrossEncoderResult:
    """Score every candidate with the cross-encoder (blocking: call from a worker thread)."""
    model, device, dtype = load_cross_encoder(settings)
    ids = [h.id for h in candidates]
    started = time.perf_counter()
    raw, batches = score_pairs(
        model, query, [clean_document(texts[d], settings.doc_chars) for d in ids], settings.batch_size
    )
    elapsed = time.perf_counter() - started
    model_scores = dict(zip(ids, raw, strict=True))
    combined = blend_scores(model_scores, {h.id: h.score for h in candidates}, settings.blend, mode)
    position = {d: i for i, d in enumerate(ids)}
    order = sorted(ids, key=lambda d: (-combined[d], -model_scores[d], position[d]))
    return CrossEncoderResult(
        order=order, model_scores=model_scores, combined=combined, model=str(settings.model), device=device,
        dtype=dtype, pairs=len(ids), batches=batches, pairs_per_s=round(len(ids) / elapsed, 1) if elapsed else 0.0,
    )  # fmt: skip


async def _run(request: RerankRequest) -> CrossEncoderResult:
    rerank = request.settings
    return await asyncio.to_thread(rerank_cross_encoder, request.query, request.candidates, request.texts,
                                   rerank.cross_encoder, rerank.pointwise_mode)  # fmt: skip


def _unavailable(rerank: RerankSettings) -> str:
    return "" if rerank.cross_encoder.model else "no model (set rerank.cross_encoder.model)"


SPEC = RerankerSpec(
    name="cross_encoder",
    description="A local sentence-transformers CrossEncoder; before LLM rerankers, a first pass over their top llm_k.",
    run=_run,
    result=CrossEncoderResult,
    needs_llm=False,
    settings_section="cross_encoder",
    default_weight=None,
    text_limit=lambda rerank: rerank.cross_encoder.doc_chars,
    unavailable=_unavailable,
)
