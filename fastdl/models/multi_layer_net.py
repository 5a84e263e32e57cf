"""MultiLayerNet and MultiLayerNetExtend: fully connected nets of any depth (book chapter 6).

Layout per hidden layer: Affine [-> BatchNorm] -> activation [-> Dropout];
then a last Affine and SoftmaxWithLoss.  Weight decay adds
``0.5 * weight_decay_lambda * sum(W**2)`` over all Affine weights to the loss.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import DTypeLike

from ..init import RNGLike, as_rng, init_std, normal
from ..layers import Affine, BatchNormalization, Dropout, Relu, Sigmoid
from ._base import Model

__all__ = ["MultiLayerNet", "MultiLayerNetExtend"]

_ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid}


class MultiLayerNet(Model):
    """Fully connected net: x (N, input_size) -> scores (N, output_size).

    Parameters ``W1, b1, ..., W{L}, b{L}`` with ``L = len(hidden_size_list) + 1``.
    ``activation``: 'relu' or 'sigmoid'.  ``weight_init_std``: 'relu'/'he'
    (std sqrt(2/n)), 'sigmoid'/'xavier' (sqrt(1/n)) or a number.
    """

    name = "multi_layer"

    def __init__(self, input_size: int, hidden_size_list: Sequence[int], output_size: int,
                 activation: str = "relu", weight_init_std: float | str = "relu",
                 weight_decay_lambda: float = 0, *, dtype: DTypeLike = np.float32,
                 seed: RNGLike = None) -> None:
        config = dict(input_size=input_size, hidden_size_list=[int(h) for h in hidden_size_list],
                      output_size=output_size, activation=activation, weight_init_std=weight_init_std,
                      weight_decay_lambda=weight_decay_lambda)
        self._build(config, dtype, seed, use_dropout=False, dropout_ration=0.5, use_batchnorm=False)

    def _build(self, config, dtype, seed, use_dropout, dropout_ration, use_batchnorm) -> None:
        super().__init__(config, dtype, seed)
        if config["activation"] not in _ACTIVATIONS:
            raise ValueError(f"activation must be 'relu' or 'sigmoid', got {config['activation']!r}")
        if not config["weight_decay_lambda"] >= 0:
            raise ValueError(f"weight_decay_lambda must be >= 0, got {config['weight_decay_lambda']!r}")
        self.weight_decay_lambda = float(config["weight_decay_lambda"])
        rng = as_rng(seed)
        sizes = [config["input_size"], *config["hidden_size_list"], config["output_size"]]
        last = len(sizes) - 1
        for i in range(1, last + 1):
            std = init_std(config["weight_init_std"], sizes[i - 1])
            W = self._param(f"W{i}", normal((sizes[i - 1], sizes[i]), std, rng, self.dtype))
            b = self._param(f"b{i}", np.zeros(sizes[i]))
            self._add(f"Affine{i}", Affine(W, b), grads={f"W{i}": "dW", f"b{i}": "db"})
            if i == last:
                break
            if use_batchnorm:
                gamma = self._param(f"gamma{i}", np.ones(sizes[i]))
                beta = self._param(f"beta{i}", np.zeros(sizes[i]))
                bn = BatchNormalization(gamma, beta, running_mean=np.zeros(sizes[i], self.dtype),
                                        running_var=np.ones(sizes[i], self.dtype))
                self._add(f"BatchNorm{i}", bn, grads={f"gamma{i}": "dgamma", f"beta{i}": "dbeta"},
                          buffers={f"running_mean{i}": "running_mean", f"running_var{i}": "running_var"})
            self._add(f"Activation_function{i}", _ACTIVATIONS[config["activation"]]())
            if use_dropout:
                self._add(f"Dropout{i}", Dropout(dropout_ration, rng=int(rng.integers(2**63))))


class MultiLayerNetExtend(MultiLayerNet):
    """:class:`MultiLayerNet` with optional dropout and batch normalisation.

    ``use_dropout``: a Dropout(``dropout_ration``) after each hidden activation
    (the book's spelling ``ration``).  ``use_batchnorm``: a BatchNormalization
    after each hidden Affine, with parameters ``gamma{i}`` (ones), ``beta{i}``
    (zeros) and running statistics ``running_mean{i}``/``running_var{i}``
    (saved with the weights).
    """

    name = "multi_layer_extend"

    def __init__(self, input_size: int, hidden_size_list: Sequence[int], output_size: int,
                 activation: str = "relu", weight_init_std: float | str = "relu",
                 weight_decay_lambda: float = 0, use_dropout: bool = False, dropout_ration: float = 0.5,
                 use_batchnorm: bool = False, *, dtype: DTypeLike = np.float32,
                 seed: RNGLike = None) -> None:
        config = dict(input_size=input_size, hidden_size_list=[int(h) for h in hidden_size_list],
                      output_size=output_size, activation=activation, weight_init_std=weight_init_std,
                      weight_decay_lambda=weight_decay_lambda, use_dropout=bool(use_dropout),
                      dropout_ration=float(dropout_ration), use_batchnorm=bool(use_batchnorm))
        self._build(config, dtype, seed, use_dropout, dropout_ration, use_batchnorm)
