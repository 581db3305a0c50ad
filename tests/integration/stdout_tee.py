"""Run a command with stdin inherited, copying its stdout to ours and to the file given first (raw bytes)."""

from __future__ import annotations

import subprocess
import sys

if __name__ == "__main__":
    log_path, command = sys.argv[1], sys.argv[2:]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE)  # noqa: S603 - test helper
    assert proc.stdout is not None
    with open(log_path, "ab") as log:
        for line in iter(proc.stdout.readline, b""):
            log.write(line)
            log.flush()
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
    sys.exit(proc.wait())
