"""Keeping stdout clean for the stdio transport: logs to stderr, third-party banners and progress bars off.

On stdio, stdout carries JSON-RPC frames only. The SDK points fd 1 at stderr while it serves; before
that (imports, settings, building the server) ``stdout_to_stderr`` does the same for our start-up.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from diver.index.stores import backend_loggers

QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TQDM_DISABLE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "ANONYMIZED_TELEMETRY": "False",
    "CHROMA_TELEMETRY": "False",
}
_NOISY_LOGGERS = (
    *backend_loggers(),  # the vector stores' client libraries
    "httpx",
    "httpcore",
    "sentence_transformers",
    "transformers",
    "urllib3",
    "posthog",
)


def quiet_environment() -> None:
    """Turn off progress bars and telemetry of the libraries we load (explicit user settings win)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    warnings.simplefilter("ignore", DeprecationWarning)


def configure_logging(level: str = "INFO") -> None:
    """Every log record to stderr, one line each; noisy libraries at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send fd 1 and ``sys.stdout`` to stderr for the duration (C extensions and prints included)."""
    sys.stdout.flush()
    saved_fd = os.dup(1)
    saved_stream = sys.stdout
    try:
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = saved_stream
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
