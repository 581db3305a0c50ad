"""Evaluation harness (imported as ``diver.evals``): benchmarks runs, metrics, reports."""
