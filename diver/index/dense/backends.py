"""CPU inference backends for sentence-transformers models: ONNX Runtime and OpenVINO over a one-time ONNX export.

The model is exported offline from the loaded ``SentenceTransformer`` (its whole module chain: transformer,
pooling, normalisation) with ``torch.onnx``; the export lives in the cache dir under
``embed-exports/<model>-<key>``, the key hashing the weights, the module chain, the sequence length and the
export settings, so a changed model or setting exports again and nothing is fetched from a hub.

``auto`` tries the installed backends on a verification batch (mixed lengths, unicode, one past the
sequence length): each must agree with torch (minimum cosine >= ``verify_min_cosine``) and beat it in
speed; the fastest such one is used, else torch. The decision and its figures are kept in a ``BackendChoice``
and written next to the export (``choice.json``) so ``diver collections`` can show it without loading a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from diver.config import EmbeddingSettings
from diver.errors import ConfigError

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bumped when the export procedure changes
CHOICE_FORMAT = 2  # bumped when auto's trial changes: earlier recorded choices are made again
OPSET = 17
FAST_BACKENDS = ("openvino", "onnx")  # tried in this order by auto; the fastest verified one wins
Features = dict[str, np.ndarray]


class ExportError(ConfigError):
    """The model could not be exported or run by a backend."""


class Runner(Protocol):
    """One forward pass over tokenized numpy inputs; returns the (not yet normalised) sentence embeddings."""

    name: str

    def __call__(self, features: Features) -> np.ndarray: ...


@dataclass
class BackendChoice:
    requested: str
    picked: str = "torch"
    precision: str = "float32"
    reason: str = ""
    trials: dict[str, dict[str, float | str]] = field(default_factory=dict)

    def summary(self) -> str:
        """E.g. 'openvino bf16 (auto: 4.4x torch, min cos 0.99997)' or 'torch float32 (auto: <why>)'."""
        trial = self.trials.get(self.picked, {})
        speed, cosine = trial.get("speedup"), trial.get("min_cosine")
        notes = [self.requested] if self.requested != self.picked else []
        if isinstance(speed, float) and isinstance(cosine, float):
            notes.append(f"{speed:.1f}x torch, min cos {cosine:.5f}")
        if self.reason:
            notes.append(self.reason)
        return f"{self.picked} {self.precision}" + (f" ({': '.join(notes)})" if notes else "")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: fall back to platform's answer
    return platform.processor() or platform.machine()


def installed(backend: str) -> bool:
    """Whether a backend's runtime (and the ONNX exporter) can be imported here."""
    names = {"onnx": ("onnx", "onnxruntime"), "openvino": ("onnx", "openvino")}.get(backend, ())
    for name in names:
        try:
            __import__(name)
        except ImportError:
            return False
    return True


# -- export ---------------------------------------------------------------------------------------


def input_names(model: Any) -> list[str]:
    tokenizer = model.tokenizer
    names = list(getattr(tokenizer, "model_input_names", ("input_ids", "attention_mask")))
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in names]


def export_key(model: Any, settings: EmbeddingSettings, max_seq_length: int) -> str:
    """Hash of the weights, the module chain and the export settings."""
    import torch

    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    digest.update(repr(model).encode())
    digest.update(
        json.dumps(
            {"format": EXPORT_FORMAT, "opset": OPSET, "max_seq_length": max_seq_length, "torch": torch.__version__}
        ).encode()
    )
    return digest.hexdigest()


def export_dir(cache_dir: Path, model_id: str, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[-60:]
    return cache_dir / "embed-exports" / f"{safe}-{key[:20]}"


class _Forward:
    """The model's module chain as a positional-argument module (what torch.onnx traces)."""

    def __init__(self, model: Any, names: list[str]) -> None:
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = model

            def forward(self, *args: Any) -> Any:
                return self.inner(dict(zip(names, args, strict=True)))["sentence_embedding"]

        self.module = Wrapped().eval()


def export_onnx(model: Any, target: Path) -> Path:
    """``target/model.onnx`` exported from the loaded model (once; atomic, safe between processes)."""
    path = target / "model.onnx"
    if path.exists():
        return path
    import torch

    names = input_names(model)
    sample = model.tokenize(["a short sample sentence for the export", "another one"])
    args = tuple(sample[n].to("cpu") for n in names)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    started = time.perf_counter()
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for every input
            torch.onnx.export(
                _Forward(model, names).module,
                args,
                str(staging / "model.onnx"),
                dynamo=False,
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "sentence_embedding": {0: "batch"}},
                opset_version=OPSET,
            )
        try:
            staging.rename(target)
        except OSError:  # another process finished first: its export is the same
            shutil.rmtree(staging, ignore_errors=True)
    except Exception as exc:  # noqa: BLE001 - torch.onnx raises many types; all mean "cannot export"
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(f"cannot export the embedding model to ONNX: {type(exc).__name__}: {exc}") from exc
    log.info("exported the embedding model to %s in %.1fs", target, time.perf_counter() - started)
    return path


def quantized_onnx(path: Path) -> Path:
    """A dynamic int8 (weights int8, activations quantized per call) copy of an export, made once."""
    out = path.with_name("model-int8-dynamic.onnx")
    if out.exists():
        return out
    from onnxruntime.quantization import QuantType, quantize_dynamic

    staging = out.with_name(f".{out.name}.{os.getpid()}")
    quantize_dynamic(str(path), str(staging), weight_type=QuantType.QInt8)
    os.replace(staging, out)
    return out


# -- runners --------------------------------------------------------------------------------------


class OnnxRuntimeRunner:
    name = "onnx"

    def __init__(self, path: Path, threads: int, settings: EmbeddingSettings) -> None:
        import onnxruntime as ort

        self.precision = "float32"
        if settings.quantize == "int8-dynamic":
            path = quantized_onnx(path)
            self.precision = "int8-dynamic"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._names = [i.name for i in self._session.get_inputs()]

    def __call__(self, features: Features) -> np.ndarray:
        out = self._session.run(None, {n: features[n] for n in self._names})[0]
        return np.asarray(out, dtype=np.float32)


class OpenVinoRunner:
    name = "openvino"

    def __init__(self, path: Path, threads: int, settings: EmbeddingSettings) -> None:
        import openvino as ov

        if settings.quantize != "none":
            raise ConfigError("embedding.quantize applies to backend 'onnx' only")
        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if settings.backend_precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = settings.backend_precision
        self._compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = str(getattr(hint, "get_type_name", lambda: hint)())
        self._request = self._compiled.create_infer_request()
        self._names = [p.get_any_name() for p in self._compiled.inputs]
        self._lock = threading.Lock()  # one infer request: calls from several threads take turns

    def __call__(self, features: Features) -> np.ndarray:
        with self._lock:
            result = self._request.infer({n: features[n] for n in self._names})
            return np.array(result[0], dtype=np.float32)


RunnerFactory = Callable[[Path, int, EmbeddingSettings], Runner]
RUNNERS: dict[str, RunnerFactory] = {"onnx": OnnxRuntimeRunner, "openvino": OpenVinoRunner}


# -- verification and choice ----------------------------------------------------------------------

_SAMPLE = (
    "The Lebesgue dominated convergence theorem gives conditions under which limits and integrals commute. "
    "Let f_n be measurable functions converging pointwise to f, each bounded by an integrable g. "
)


def verification_texts() -> list[str]:
    """Mixed lengths (a word to past 256 tokens), unicode, code and numbers: what chunks look like."""
    return [
        "theorem",
        "Ünïcödé — 数学の定理 and ∑ x² over ℝ; café naïve façade",
        "def binary_search(a, x):\n    lo, hi = 0, len(a)\n    while lo < hi: mid = (lo + hi) // 2",
        _SAMPLE * 2,
        "3.14159 2.71828 1.41421 0x1F 1e-9 " * 12,
        _SAMPLE * 5,
        _SAMPLE * 9,
        _SAMPLE * 14,
    ]


def speed_texts() -> list[str]:
    """What indexing spends its time on: full-length chunks (past 256 tokens, truncated), 16 of them."""
    return [f"Part {i}. " + _SAMPLE * 14 for i in range(16)]


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float((a * b).sum(axis=1).min())


def _seconds(encode: Callable[[list[str]], np.ndarray], texts: list[str]) -> float:
    encode(texts[:2])  # warm-up: first-shape compilation, allocator
    started = time.perf_counter()
    encode(texts)
    return time.perf_counter() - started


def choose_backend(
    settings: EmbeddingSettings,
    torch_encode: Callable[[list[str]], np.ndarray],
    load: Callable[[str], Callable[[list[str]], np.ndarray]],
) -> tuple[BackendChoice, Callable[[list[str]], np.ndarray] | None]:
    """Pick the backend per ``settings.backend``; returns the choice and the fast encode (None = torch).

    ``load(name)`` builds a backend's encode function (raising ConfigError when it cannot);
    ``torch_encode`` is the reference. Agreement is checked on mixed texts (``verification_texts``), speed
    on full-length chunks (``speed_texts``)."""
    choice = BackendChoice(requested=settings.backend)
    if settings.backend == "torch":
        return choice, None
    if settings.backend != "auto":
        encode = load(settings.backend)  # an explicit backend: its errors reach the user
        choice.picked = settings.backend
        choice.precision = getattr(encode, "precision", "float32")
        return choice, encode
    texts, timed = verification_texts(), speed_texts()
    reference = torch_encode(texts)
    torch_s = _seconds(torch_encode, timed)
    choice.trials["torch"] = {"seconds": round(torch_s, 4)}
    best: tuple[float, str, Callable[[list[str]], np.ndarray]] | None = None
    for name in FAST_BACKENDS:
        if not installed(name):
            choice.trials[name] = {"error": "not installed"}
            continue
        try:
            encode = load(name)
            cosine = min_cosine(encode(texts), reference)
            seconds = _seconds(encode, timed)
        except ConfigError as exc:
            choice.trials[name] = {"error": str(exc)[:300]}
            continue
        speedup = torch_s / max(seconds, 1e-9)
        choice.trials[name] = {"seconds": round(seconds, 4), "min_cosine": round(cosine, 6), "speedup": speedup}
        if cosine < settings.verify_min_cosine:
            choice.trials[name]["error"] = f"disagrees with torch (min cosine {cosine:.5f})"
        elif speedup > 1.0 and (best is None or seconds < best[0]):
            best = (seconds, name, encode)
    if best is None:
        choice.reason = "no installed backend was verified faster than torch with matching embeddings"
        return choice, None
    choice.picked = best[1]
    choice.precision = getattr(best[2], "precision", "float32")
    return choice, best[2]


def choice_context(settings: EmbeddingSettings) -> dict[str, str]:
    """What a recorded auto choice depends on: the CPU, the runtimes' versions, the settings that matter."""
    versions = {}
    for name in ("onnxruntime", "openvino", "torch"):
        try:
            versions[name] = str(getattr(__import__(name), "__version__", "?"))
        except ImportError:
            versions[name] = "missing"
    return {
        "format": str(CHOICE_FORMAT),
        "cpu": cpu_name(),
        "threads": str(torch_threads()),
        **versions,
        "precision": settings.backend_precision,
        "min_cosine": str(settings.verify_min_cosine),
        "batch_size": str(settings.batch_size),
    }


def torch_threads() -> int:
    import torch

    return max(1, int(torch.get_num_threads()))


def save_choice(directory: Path, choice: BackendChoice, context: dict[str, str]) -> None:
    record = {**asdict(choice), "context": context, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f".choice.{os.getpid()}.json"
    staging.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(staging, directory / "choice.json")


def _read_choice(path: Path) -> tuple[BackendChoice, dict[str, str]] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        fields = {k: record[k] for k in ("requested", "picked", "precision", "reason", "trials")}
        return BackendChoice(**fields), dict(record.get("context", {}))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recorded_choice(directory: Path, context: dict[str, str]) -> BackendChoice | None:
    """An auto choice verified earlier on this CPU with the same runtimes and settings, else None."""
    found = _read_choice(directory / "choice.json")
    if found is None or found[1] != context or found[0].requested != "auto":
        return None
    return found[0]


def last_choice(cache_dir: Path, model_id: str) -> str | None:
    """The most recent backend choice recorded for a model in a cache dir (no model is loaded)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[-60:]
    found = sorted(
        (cache_dir / "embed-exports").glob(f"{safe}-*/choice.json"), key=lambda p: p.stat().st_mtime
    )
    record = _read_choice(found[-1]) if found else None
    return record[0].summary() if record else None


class BackendEncoder:
    """Tokenize all texts at once (Rust, parallel), sort by token count, run length-grouped batches padded to
    their own longest text (a single query is never padded), L2-normalise."""

    def __init__(self, runner: Runner, tokenizer: Any, batch_size: int, precision: str = "float32") -> None:
        self.runner = runner
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.precision = precision

    def __call__(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode(texts)
        if len(encodings) == 1:
            return _unit(self.runner(self.tokenizer.pack(encodings)))
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            parts.append((rows, self.runner(self.tokenizer.pack([encodings[i] for i in rows]))))
        out = np.empty((len(texts), parts[0][1].shape[1]), dtype=np.float32)
        for rows, vectors in parts:
            out[rows] = vectors
        return _unit(out)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: np.ndarray = vectors / norms
    return unit


def default_export_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "diver"
