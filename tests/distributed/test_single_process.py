"""fastdl.distributed in one process (no MPI launcher): every call is the one-rank no-op,
and it says why distributed training is unavailable (no mpi4py needed)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from fastdl import distributed


def test_one_process_is_rank_0_of_1():
    if any(v in os.environ for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")):
        pytest.skip("this pytest runs under an MPI launcher")
    assert (distributed.is_distributed(), distributed.rank(), distributed.world_size()) == (
        False, 0, 1)
    assert "mpirun" in distributed.unavailable_reason() or "mpi4py" in distributed.unavailable_reason()
    grads = {"W": np.arange(6.0).reshape(2, 3), "b": np.ones(3, np.float32)}
    before = {k: v.copy() for k, v in grads.items()}
    assert distributed.allreduce_gradients(grads) is grads
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])
    np.testing.assert_array_equal(distributed.allreduce_sum([1.5, 2]), [1.5, 2.0])


def test_info_says_why_unavailable():
    env = {k: v for k, v in os.environ.items()
           if k not in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")}
    r = subprocess.run([sys.executable, "-m", "fastdl", "info"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stdout.splitlines() if x.startswith("distributed:")]
    assert line and "unavailable" in line[0] and ("mpirun" in line[0] or "mpi4py" in line[0])


def test_trainer_distributed_true_needs_mpi():
    from fastdl.models import TwoLayerNet
    from fastdl.trainer import Trainer

    if distributed.is_distributed():
        pytest.skip("this pytest runs under an MPI launcher")
    x, t = np.zeros((10, 2)), np.zeros(10, dtype=int)
    with pytest.raises(RuntimeError, match="distributed=True"):
        Trainer(TwoLayerNet(2, 3, 2), x, t, x, t, distributed=True)
