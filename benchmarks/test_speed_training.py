"""Whole training steps at batch 100: forward, backward (no dx for the input layer), Adam update."""
from __future__ import annotations

import pytest

from fastdl import bench

STEP_CASES = [c for c in bench.CASES if c.kind == "train_step"]


@pytest.mark.parametrize("case", STEP_CASES, ids=lambda c: f"{c.kind}:{c.layer}")
def test_train_step(run_case, case, impl, dtype):
    run_case(case, impl, dtype)
