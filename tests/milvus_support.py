"""A real ``milvus-lite server`` process on 127.0.0.1 for tests of the Milvus backend (store.backend = "milvus")."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

MILVUS_LITE = Path(sys.executable).with_name("milvus-lite")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MilvusLite:
    """``milvus-lite server`` bound to loopback only, on a free port; stop/start keep its data directory."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.log = data_dir.with_name(data_dir.name + ".log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> MilvusLite:
        if shutil.which(str(MILVUS_LITE)) is None:
            raise RuntimeError(f"{MILVUS_LITE} is missing: milvus-lite is in the dev extra (make setup)")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(MILVUS_LITE), "server", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
                 "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"milvus-lite exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"milvus-lite did not listen on 127.0.0.1:{self.port} within {timeout}s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None


def milvus_store(server: MilvusLite, prefix: str = "diver", **extra: object) -> dict[str, object]:
    """``store`` settings for the Milvus backend on ``server``."""
    return {"backend": "milvus", "milvus_uri": server.uri, "milvus_prefix": prefix, "milvus_timeout_s": 10.0, **extra}
