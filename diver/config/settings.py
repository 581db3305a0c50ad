"""``DiverSettings`` (the sections together), its sources (keywords, env, TOML) and ``DIVER_*`` name checks."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from diver.config.index import (
    BM25Settings,
    ChunkingSettings,
    EmbeddingSettings,
    FusionSettings,
    StoreSettings,
)
from diver.config.pipeline import ExpansionSettings, LLMSettings, PromptSettings
from diver.config.profiles import Profile, apply_profile
from diver.config.rerank import RerankSettings
from diver.config.search import SearchSettings
from diver.config.service import EngineSettings, LimitSettings, ServerSettings


class DiverSettings(BaseSettings):
    """All of DIVER's settings. See README 'Configuration' for the env-variable form of each knob."""

    model_config = SettingsConfigDict(
        env_prefix="DIVER_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    profile: Profile = Field(
        "default",
        description="'reference' sets every knob the DIVER reference code fixes to its value (expansion rounds "
        "without early stop, QExpand's one text, query-side BM25, fusion pool 1000 and its min-max, the "
        "rerankers' sampling and budgets, GroupRank's run-wide shuffles; docs/PIPELINE.md lists each with "
        "its file:line); a knob set explicitly still wins. 'default' = ours.",
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
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    rerank: RerankSettings = Field(default_factory=RerankSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)

    @field_validator("data_dir", "cache_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="before")
    @classmethod
    def _profile(cls, data: Any) -> Any:
        return apply_profile(data, cls) if isinstance(data, MutableMapping) else data

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
