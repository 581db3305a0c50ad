"""The installed llama.cpp runs on any x86-64-v3 CPU: no AVX-512 or AMX instruction in its libraries.

A wheel built with -march=native on an AVX-512 host died with SIGILL on another CPU (issue 12). The pinned
build (pyproject [tool.uv.config-settings-package]) targets x86-64-v3 (AVX2, FMA, F16C, BMI2). This scans the
machine code of every shared library shipped in ``llama_cpp/lib`` with ``objdump -d`` for registers and
opcodes that exist only from AVX-512 on (zmm, mask registers k0-k7, xmm/ymm16-31, EVEX broadcasts) and for AMX
tile registers (tmm). ggml's runtime-dispatched CPU variants (``libggml-cpu-<variant>.so``, loaded only on
CPUs that have the features) would be exempt; this build has none.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

BEYOND_BASELINE = re.compile(
    r"%zmm\d+|%tmm\d|%k[0-7]\b|%[xy]mm(?:1[6-9]|2\d|3[01])\b|\{1to\d+\}"
    r"|\b(?:vpternlog[dq]|vperm[it]2\w+|kmov[bwdq]|vpcompress[dq]|vpdpbusds?)\b"
)
"""AVX-512 (F/VL/BW/VNNI) and AMX in AT&T syntax, as objdump prints them."""

VARIANT_LIB = re.compile(r"libggml-cpu-[a-z0-9_]+\.so")
"""Runtime-dispatched CPU backends (GGML_CPU_ALL_VARIANTS): allowed to use what their name says."""


def llama_libraries() -> list[Path]:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llama-cpp-python is not installed: pip install 'diver-retrieval[local-llm]'")
    lib_dir = Path(next(iter(spec.submodule_search_locations))) / "lib"
    # one file per library: libfoo.so, libfoo.so.0 and libfoo.so.0.25.3 are links or copies of one file
    by_name: dict[str, Path] = {}
    for path in sorted(lib_dir.glob("*.so*")):
        if path.is_file():
            by_name.setdefault(path.name.split(".so")[0], path.resolve())
    libs = sorted(by_name.values())
    assert libs, f"no shared library under {lib_dir}"
    return libs


def beyond_baseline(lib: Path) -> list[str]:
    """Instruction lines of ``lib`` that need more than x86-64-v3."""
    out = subprocess.run(  # noqa: S603 - fixed tool, our own file
        ["objdump", "-d", "--no-show-raw-insn", str(lib)],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if BEYOND_BASELINE.search(line)]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the baseline is an x86-64 one")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_llama_cpp_libraries_stay_within_x86_64_v3() -> None:
    libs = llama_libraries()
    assert any(lib.name.startswith("libggml-cpu") for lib in libs), [lib.name for lib in libs]
    offenders = {
        lib.name: hits[:3]
        for lib in libs
        if not VARIANT_LIB.fullmatch(lib.name.split(".so")[0] + ".so")
        for hits in [beyond_baseline(lib)]
        if hits
    }
    assert not offenders, (
        "llama.cpp was built for a CPU beyond x86-64-v3 (native flags?): "
        f"{offenders}. Rebuild: make setup-llm REBUILD_LLM=1"
    )


def test_the_scan_recognises_avx512() -> None:
    """The pattern matches what a native build on an AVX-512 host emits (so a pass means something)."""
    for line in (
        "vmovups (%rax),%zmm0",
        "vpdpbusd %ymm2,%ymm1,%ymm0",
        "kmovw %k1,%eax",
        "vaddps (%rdx){1to16},%zmm1,%zmm2",
        "tdpbssd %tmm2,%tmm1,%tmm0",
        "vmovdqu64 %ymm17,(%rsi)",
    ):
        assert BEYOND_BASELINE.search(line), line
    for line in ("vfmadd231ps %ymm1,%ymm2,%ymm0", "vpmaddubsw %ymm3,%ymm4,%ymm5", "vcvtph2ps %xmm1,%ymm1"):
        assert not BEYOND_BASELINE.search(line), line
