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


_NO_MPI4PY = "import sys; sys.modules['mpi4py'] = None  # import mpi4py now fails: as if not installed\n"
_TRAIN = """
import numpy as np
from fastdl import distributed
from fastdl.models import TwoLayerNet
from fastdl.trainer import Trainer
rng = np.random.default_rng(0)
x, t = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
tr = Trainer(TwoLayerNet(4, 5, 3, seed=0), x, t, x, t, epochs=1, mini_batch_size=10, verbose=False)
tr.train()
print("steps", tr.current_iter, "reason:", distributed.unavailable_reason())
"""


def _run_without_mpi4py(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in (
        "PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS",
        "FASTDL_DISTRIBUTED")}
    return subprocess.run([sys.executable, "-c", _NO_MPI4PY + code], env=dict(clean, **env),
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("env", [{}, {"FASTDL_DISTRIBUTED": "1"}, {"PMI_SIZE": "1", "PMI_RANK": "0"}],
                         ids=["alone", "FASTDL_DISTRIBUTED", "launcher-of-one"])
def test_without_mpi4py_one_process_trains(env):
    # No mpi4py: a single process trains as it always did, and says why it is alone.
    r = _run_without_mpi4py(_TRAIN, **env)
    assert r.returncode == 0, r.stderr
    assert "steps 4 reason: mpi4py is not installed" in r.stdout


def test_without_mpi4py_a_rank_of_several_refuses_to_train_alone():
    # Started as one of 2 ranks but without mpi4py: each rank would train alone and write the
    # same files. The Trainer refuses, naming mpi4py; `fastdl info` says so and exits 0.
    r = _run_without_mpi4py(_TRAIN, PMI_SIZE="2", PMI_RANK="0")
    assert r.returncode != 0
    assert "DistributedError" in r.stderr and "one of 2" in r.stderr and "mpi4py" in r.stderr
    r = _run_without_mpi4py("from fastdl.cli import main; sys.exit(main(['info']))",
                            PMI_SIZE="2", PMI_RANK="0")
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stdout.splitlines() if x.startswith("distributed:")]
    assert line and "unavailable" in line[0] and "one of 2" in line[0] and "mpi4py" in line[0]
