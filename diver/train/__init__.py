"""Training the retriever (DIVER-style): pairs, hard-negative mining, theorem-disjoint splits, InfoNCE
fine-tuning on sentence-transformers, re-embedding a collection with a new model, synthetic queries.

Nothing here is imported by the core at start-up: torch and sentence-transformers load on first use.
"""
