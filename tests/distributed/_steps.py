"""Run k data-parallel (or one-process) training steps and save the parameters.

Under ``mpiexec -n N``: ``python _steps.py MODEL DTYPE K OUT`` writes OUT.rank<r>.npz on
every rank.  Imported: :func:`run` gives the one-process parameters to compare with.
"""
from __future__ import annotations

import sys

import numpy as np

from fastdl.models import MultiLayerNetExtend, SimpleConvNet
from fastdl.trainer import Trainer

GLOBAL_BATCH = 100


def data(model: str, dtype: str):
    rng = np.random.default_rng(5)
    shape = (1, 12, 12) if model == "simple_convnet" else (40,)
    x = rng.standard_normal((400,) + shape).astype(dtype)
    t = rng.integers(0, 10, 400)
    return x, t


def network(model: str, dtype: str):
    if model == "simple_convnet":
        return SimpleConvNet(input_dim=(1, 12, 12), conv_param={"filter_num": 6, "filter_size": 3,
                                                               "pad": 0, "stride": 1},
                             hidden_size=20, output_size=10, weight_init_std="he",
                             dtype=dtype, seed=1)
    return MultiLayerNetExtend(40, [30, 20], 10, use_dropout=True, dropout_ration=0.3,
                               weight_decay_lambda=0.01, dtype=dtype, seed=1)


def run(model: str, dtype: str, steps: int, distributed=None) -> dict[str, np.ndarray]:
    x, t = data(model, dtype)
    net = network(model, dtype)
    tr = Trainer(net, x, t, x[:50], t[:50], epochs=10, mini_batch_size=GLOBAL_BATCH,
                 optimizer="momentum", optimizer_param={"lr": 0.05}, verbose=False, seed=3,
                 distributed=distributed)
    for _ in range(steps):
        tr.train_step()
    return {k: v.copy() for k, v in net.params.items()}


if __name__ == "__main__":
    from fastdl import distributed

    model, dtype, steps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    params = run(model, dtype, steps)
    np.savez(f"{out}.rank{distributed.rank()}.npz", world_size=distributed.world_size(), **params)
