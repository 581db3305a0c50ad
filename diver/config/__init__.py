"""One validated configuration model for the whole system.

Every knob lives here, with its documentation. Values come from (highest priority first):
explicit keyword arguments, ``DIVER_*`` environment variables (nested with ``__``, e.g.
``DIVER_EMBEDDING__MODEL``), an optional TOML file named by ``DIVER_CONFIG``, then the defaults below.
Unknown keys are refused (``extra="forbid"``) so a typo fails at load instead of being ignored.
"""

from diver.config.base import DEFAULT_EMBEDDING_MODEL, Section
from diver.config.index import (
    BM25Settings,
    ChunkingSettings,
    EmbeddingSettings,
    FusionSettings,
    StoreSettings,
)
from diver.config.pipeline import ExpanderModelSettings, ExpansionSettings, LLMSettings, ModelSettings
from diver.config.rerank import CrossEncoderSettings, GroupwiseSettings, RerankSettings
from diver.config.service import EngineSettings, LimitSettings, ServerSettings
from diver.config.settings import (
    OTHER_ENV_VARIABLES,
    TOOL_ENV_PREFIXES,
    DiverSettings,
    check_env_names,
    env_variable_names,
    load_settings,
)

__all__ = [
    "BM25Settings", "ChunkingSettings", "CrossEncoderSettings", "DEFAULT_EMBEDDING_MODEL", "DiverSettings",
    "EmbeddingSettings", "EngineSettings", "ExpanderModelSettings", "ExpansionSettings", "FusionSettings",
    "GroupwiseSettings", "LLMSettings", "LimitSettings", "ModelSettings", "OTHER_ENV_VARIABLES",
    "RerankSettings", "Section", "ServerSettings", "StoreSettings", "TOOL_ENV_PREFIXES", "check_env_names",
    "env_variable_names", "load_settings",
]
