"""The C++ build lists its sources by family, and the version is written once (pyproject.toml)."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import fastdl

REPO = Path(__file__).resolve().parents[2]
CMAKE = REPO / "CMakeLists.txt"


def _checkout() -> None:
    if not CMAKE.is_file() or not (REPO / "csrc").is_dir():
        pytest.skip("not run from a checkout")


def _cmake_lists() -> dict[str, list[str]]:
    text = CMAKE.read_text()
    lists = {}
    for name, body in re.findall(r"set\((FASTDL_\w+)\s+([^)]*)\)", text):
        lists[name] = [w for w in body.split() if w.startswith("csrc/")]
    return lists


def test_every_csrc_source_is_listed_once():
    _checkout()
    listed = [src for srcs in _cmake_lists().values() for src in srcs]
    on_disk = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "csrc").rglob("*.cpp"))
    assert sorted(listed) == on_disk
    assert len(listed) == len(set(listed)), "a source is listed twice"


def test_isa_lists_hold_exactly_the_per_cpu_kernel_bodies():
    """kernels_avx2.cpp / kernels_avx512.cpp get ISA flags; no portable file does (it would
    fault on an older CPU)."""
    _checkout()
    lists = _cmake_lists()
    for isa in ("avx2", "avx512"):
        srcs = lists[f"FASTDL_{isa.upper()}"]
        assert srcs and all(s.endswith(f"/kernels_{isa}.cpp") for s in srcs), srcs
    portable = lists["FASTDL_PORTABLE"] + lists["FASTDL_NO_FMA_CONTRACT"]
    assert not [s for s in portable if re.search(r"_avx(2|512)\.cpp$", s)]


def test_version_is_written_once():
    _checkout()
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert fastdl.__version__ == version
    cpp = pytest.importorskip("fastdl._cpp")
    assert cpp.__version__ == version
    assert not re.search(r"__version__\s*=\s*['\"]\d+\.\d+", (REPO / "fastdl" / "__init__.py").read_text())
    assert version not in CMAKE.read_text()
