"""DIVER performance benchmarks (issue 6): ``python -m benchmarks.run``. Not part of the installed package."""
