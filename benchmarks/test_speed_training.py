"""Whole networks: training steps at batch 100 (forward, backward, the book's optimizer) and predict."""
from __future__ import annotations

import pytest

from fastdl import bench

STEP_CASES = [c for c in bench.CASES if c.kind in ("train_step", "predict")]


@pytest.mark.parametrize("case", STEP_CASES, ids=lambda c: f"{c.kind}:{c.layer}")
def test_train_step(run_case, case, impl, dtype):
    run_case(case, impl, dtype)
