"""Kernels on the book's shapes: conv forward/backward, max pool, softmax CE, im2col/col2im, affine, Adam."""
from __future__ import annotations

import pytest

from fastdl import bench

KERNEL_CASES = [c for c in bench.CASES if c.kind not in ("train_step", "predict")]


@pytest.mark.parametrize("case", KERNEL_CASES, ids=lambda c: f"{c.kind}:{c.layer}")
def test_kernel(run_case, case, impl, dtype):
    run_case(case, impl, dtype)
