"""The book's networks built from PyTorch layers, for the ``torch`` rows of ``fastdl bench``.

Same layer sequence and sizes as fastdl's models (:data:`~fastdl.bench.cases.TRAIN_NETS`,
:data:`~fastdl.bench.cases.PRETRAINED`); the weights are PyTorch's own initialisation
(speed does not depend on them).  Imported only when the torch rows run.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .cases import PRETRAINED, TRAIN_NETS

__all__ = ["torch_net"]


def _mlp(nn, sizes: list[int], act: str = "relu", batchnorm: bool = False, dropout: float = 0.0) -> list:
    """Affine [-> BatchNorm] -> activation [-> Dropout] per hidden layer, then the last Affine."""
    layers: list = []
    for i in range(1, len(sizes)):
        layers.append(nn.Linear(sizes[i - 1], sizes[i]))
        if i == len(sizes) - 1:
            break
        if batchnorm:
            layers.append(nn.BatchNorm1d(sizes[i], eps=1e-6, momentum=0.1))  # the book's 10e-7, 0.9
        layers.append(nn.ReLU() if act == "relu" else nn.Sigmoid())
        if dropout:
            layers.append(nn.Dropout(dropout))
    return layers


def _convnet(nn, name: str) -> list:
    if name == "simple_convnet":
        return [nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                nn.Linear(4320, 100), nn.ReLU(), nn.Linear(100, 10)]

    def block(cin, cout, pad):
        return [nn.Conv2d(cin, cout, 3, padding=pad), nn.ReLU()]

    return (block(1, 16, 1) + block(16, 16, 1) + [nn.MaxPool2d(2, 2)]
            + block(16, 32, 1) + block(32, 32, 2) + [nn.MaxPool2d(2, 2)]
            + block(32, 64, 1) + block(64, 64, 1) + [nn.MaxPool2d(2, 2)]
            + [nn.Flatten(), nn.Linear(1024, 50), nn.ReLU(), nn.Dropout(0.5),
               nn.Linear(50, 10), nn.Dropout(0.5)])


def torch_net(kind: str, name: str, dtype: Any):
    """``nn.Sequential`` of a ``train_step`` (``kind``) or ``predict`` network, in train or eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    if name.endswith("convnet"):
        layers = _convnet(nn, name)
    else:
        cfg = (TRAIN_NETS[name] if kind == "train_step" else PRETRAINED[name])[1]
        sizes = [cfg["input_size"], *([cfg["hidden_size"]] if "hidden_size" in cfg else cfg["hidden_size_list"]),
                 cfg["output_size"]]
        layers = _mlp(nn, sizes, cfg.get("activation", "relu"), cfg.get("use_batchnorm", False),
                      cfg.get("dropout_ration", 0.0) if cfg.get("use_dropout") else 0.0)
    model = nn.Sequential(*layers).to(torch.float64 if np.dtype(dtype) == np.float64 else torch.float32)
    return model.train() if kind == "train_step" else model.eval()


def torch_optimizer(name: str, params):
    """The optimizer the book trains ``name`` with (:data:`~fastdl.bench.cases.TRAIN_NETS`)."""
    import torch

    _, _, opt, kwargs = TRAIN_NETS[name]
    return getattr(torch.optim, opt)(params, **kwargs)
