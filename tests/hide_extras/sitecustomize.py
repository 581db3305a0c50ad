"""Makes packages look uninstalled, for tests/test_extras.py: a Python started with this folder on PYTHONPATH
and ``DIVER_TEST_HIDE_MODULES=mod,...`` / ``DIVER_TEST_HIDE_DISTS=dist,...`` behaves as if those modules and
distributions were absent. ``import mod`` raises ModuleNotFoundError, ``importlib.util.find_spec`` returns
None (a None entry in sys.modules) and ``importlib.metadata`` raises PackageNotFoundError / leaves them out
(libraries such as sentence-transformers decide what to import from the metadata)."""

import importlib.metadata as _metadata
import os
import re
import sys


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_MODULES = [m for m in os.environ.get("DIVER_TEST_HIDE_MODULES", "").split(",") if m]
_DISTS = {_normal(d) for d in os.environ.get("DIVER_TEST_HIDE_DISTS", "").split(",") if d}
for _module in _MODULES:
    sys.modules[_module] = None  # type: ignore[assignment]

_from_name = _metadata.Distribution.from_name.__func__  # type: ignore[attr-defined]
_discover = _metadata.Distribution.discover.__func__  # type: ignore[attr-defined]


def _hidden_from_name(cls, name):  # type: ignore[no-untyped-def]
    if _normal(name) in _DISTS:
        raise _metadata.PackageNotFoundError(name)
    return _from_name(cls, name)


def _hidden_discover(cls, **kwargs):  # type: ignore[no-untyped-def]
    return (d for d in _discover(cls, **kwargs) if _normal(d.metadata["Name"] or "") not in _DISTS)


_metadata.Distribution.from_name = classmethod(_hidden_from_name)  # type: ignore[method-assign,assignment]
_metadata.Distribution.discover = classmethod(_hidden_discover)  # type: ignore[method-assign,assignment]
