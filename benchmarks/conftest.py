"""pytest-benchmark suite: every case of ``fastdl bench`` on every backend, grouped side by side.

Run:  python -m pytest benchmarks                       # timings, grouped per case
      python -m pytest benchmarks --benchmark-disable   # each body once (what CI runs)
      python -m pytest benchmarks --fastdl-threads 1    # thread count for fastdl, BLAS and torch

PyTorch rows ("torch") run when PyTorch is installed and skip with a note otherwise.
"""
from __future__ import annotations

import pytest

import fastdl
from fastdl import bench

#: Every available fastdl backend, plus PyTorch (skipped when it is not installed).
IMPLS = fastdl.available_backends() + [bench.TORCH]


def pytest_addoption(parser):
    parser.addoption("--fastdl-threads", type=int, default=None,
                     help="threads for fastdl's backends, BLAS and torch (default: all usable cores)")


@pytest.fixture(scope="session", autouse=True)
def threads(request) -> int:
    """One thread count for every implementation, set once per session."""
    n = request.config.getoption("--fastdl-threads") or fastdl.get_num_threads()
    fastdl.set_num_threads(n)
    if bench.torch_available():
        import torch

        torch.set_num_threads(n)
    return n


@pytest.fixture(params=IMPLS)
def impl(request) -> str:
    """The implementation under test: a fastdl backend name or ``"torch"``."""
    if request.param == bench.TORCH and not bench.torch_available():
        pytest.skip("PyTorch is not installed: torch rows skipped (pip install torch to compare)")
    return request.param


@pytest.fixture(params=["float32", "float64"])
def dtype(request) -> str:
    return request.param


@pytest.fixture
def run_case(benchmark, threads):
    """Time one case on one implementation: inputs and JIT warm-up outside the timed call."""
    def run(case: bench.Case, impl: str, dtype: str) -> None:
        try:
            fn = bench.prepare(case, impl, dtype, warmup=0 if benchmark.disabled else 2)
        except bench.Unavailable as exc:
            pytest.skip(str(exc))
        benchmark.group = f"{case.name} {dtype}"
        benchmark.extra_info.update(impl=impl, dtype=dtype, shape=case.shape(), threads=threads,
                                    flops=case.flops())
        with bench.impl_context(impl):
            benchmark(fn)
    return run
