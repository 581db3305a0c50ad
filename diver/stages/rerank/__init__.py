"""The rerankers: DIVER v2's pointwise and listwise, GroupRank (DIVER v3 groupwise) and a local cross-encoder,
each one module declaring a ``RerankerSpec`` (``base``), all listed by ``registry``.

Pure parts (parsers, group plans, score aggregation, the choice of rerankers) have no LLM or model
imports; ``groupwise`` runs the LLM calls and ``cross_encoder`` loads sentence-transformers lazily.
"""
