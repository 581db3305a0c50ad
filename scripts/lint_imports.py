"""Check the import contracts in pyproject.toml ([tool.importlinter]) against the installed layout.

graph/, server/, evals/ and prompts/ are installed as diver.graph, diver.server, diver.evals and
diver.prompts (pyproject package-dir), so the source tree is not the package tree import-linter needs:
its graph builder walks the root package's folder. This script assembles the wheel's layout out of
symlinks in a temporary folder (nothing is copied or written in the checkout) and runs lint-imports
there. Run: `python scripts/lint_imports.py` (make lint does).
"""

from __future__ import annotations

import os
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_dirs() -> dict[str, Path]:
    """diver's sub-packages that live outside diver/ (pyproject [tool.setuptools] package-dir)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    return {
        name.split(".", 1)[1]: ROOT / folder
        for name, folder in mapping.items()
        if name.startswith("diver.")
    }


def assemble(into: Path) -> None:
    """into/diver: diver/'s entries plus the mapped sub-packages; into/benchmarks: benchmarks/."""
    package = into / "diver"
    package.mkdir()
    for entry in (ROOT / "diver").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in package_dirs().items():
        if (package / name).exists():
            raise SystemExit(f"diver/{name} exists and is also mapped from {folder} in pyproject.toml")
        (package / name).symlink_to(folder)
    (into / "benchmarks").symlink_to(ROOT / "benchmarks")


def main() -> int:
    from importlinter.cli import lint_imports

    with tempfile.TemporaryDirectory(prefix="diver-layers-") as tmp:
        assemble(Path(tmp))
        os.chdir(tmp)
        sys.path.insert(0, tmp)  # ahead of the editable install's finder
        return lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)


if __name__ == "__main__":
    sys.exit(main())
