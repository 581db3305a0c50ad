"""``python -m diver.service``: run the engine process of one data directory (started by a client).

The spawning client writes its settings as JSON on stdin (secrets included, never on disk); logs go to
stderr, which the client points at ``<data_dir>/engine.log``. Nothing is written to stdout.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from diver.config import load_settings
from diver.errors import DiverError


def main() -> int:
    os.umask(0o077)  # everything the engine writes (catalog, vectors, BM25 segments, logs) is the user's alone
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    logging.basicConfig(
        level=os.environ.get("DIVER_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    from diver.service.server import run

    try:
        settings = load_settings(**json.loads(sys.stdin.read() or "{}"))
        run(settings)
    except DiverError as exc:
        from diver.service.protocol import error_payload
        from diver.service.spawn import ENGINE_ERROR_PREFIX

        logging.getLogger("diver.service").error("engine not started: %s", exc)
        sys.stderr.write(ENGINE_ERROR_PREFIX + json.dumps(error_payload(exc)) + "\n")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
