"""Data-parallel steps on 2 MPI ranks equal one process's (issue 15): the same parameters
after k steps with a global batch of 100 (float64 to 1e-12, float32 to round-off), dropout
masks included, and the two ranks hold identical parameters."""
from __future__ import annotations

import numpy as np
import pytest

import _steps
from _mpi import HERE, run_mpi

STEPS = 5


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("model", ["simple_convnet", "multi_layer_extend_dropout"])
def test_two_ranks_equal_one_process(mpiexec, tmp_path, model, dtype):
    out = tmp_path / "p"
    r = run_mpi(mpiexec, 2, [_python(), str(HERE / "_steps.py"), model, dtype, str(STEPS),
                             str(out)], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    ranks = [np.load(f"{out}.rank{i}.npz") for i in range(2)]
    assert [int(p["world_size"]) for p in ranks] == [2, 2]
    one = _steps.run(model, dtype, STEPS, distributed=False)
    start = _steps.network(model, dtype).params
    tol = dict(rtol=0, atol=1e-12) if dtype == "float64" else dict(rtol=2e-6, atol=2e-7)
    for k in one:
        assert ranks[0][k].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(ranks[0][k], ranks[1][k], err_msg=k)
        np.testing.assert_allclose(ranks[0][k], one[k], err_msg=k, **tol)
        assert not np.allclose(one[k], start[k]), k  # the steps moved every parameter


def test_dropout_masks_are_the_one_process_masks():
    """ShardedRNG: the rows two ranks draw are the rows of one process's draw."""
    from fastdl.distributed import ShardedRNG

    full = np.random.default_rng(7).random((100, 6))
    parts = [ShardedRNG(np.random.default_rng(7), off, 100).random((50, 6)) for off in (0, 50)]
    np.testing.assert_array_equal(np.concatenate(parts), full)


def _python() -> str:
    import sys

    return sys.executable
