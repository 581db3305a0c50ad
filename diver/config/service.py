"""Settings of the adapters and the engine process: limits, the MCP server, the shared engine."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from diver.config.base import Section


class LimitSettings(Section):
    max_k: int = Field(1000, ge=1, description="Larger k is capped to this (and said so).")
    max_query_chars: int = Field(20000, ge=1, description="Longer queries are refused.")
    max_documents_per_call: int = Field(1000, ge=1, description="Documents per index call.")
    max_document_bytes: int = Field(5_000_000, ge=1, description="Bytes of text per document.")
    max_metadata_bytes: int = Field(65536, ge=2, description="Bytes of JSON metadata per document.")
    max_file_bytes: int = Field(
        50_000_000, ge=1, description="Bytes of a PDF, Office file or notebook read from a folder (text: max_document_bytes)."
    )
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


