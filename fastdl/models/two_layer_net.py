"""TwoLayerNet: Affine - ReLU - Affine - SoftmaxWithLoss (book chapters 4-5)."""
from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from ..init import RNGLike, as_rng, init_std, normal
from ..layers import Affine, Relu
from ._base import Model

__all__ = ["TwoLayerNet"]


class TwoLayerNet(Model):
    """Two-layer perceptron: x (N, input_size) -> scores (N, output_size).

    Parameters ``W1`` (input_size, hidden_size), ``b1``, ``W2`` (hidden_size,
    output_size), ``b2``; weights ~ N(0, weight_init_std**2) (a number, or
    'he'/'relu', 'xavier'/'sigmoid'), biases 0.  ``seed`` (int or Generator)
    makes the initialisation reproducible.
    """

    name = "two_layer"

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: float | str = 0.01, *, dtype: DTypeLike = np.float32,
                 seed: RNGLike = None) -> None:
        super().__init__(dict(input_size=input_size, hidden_size=hidden_size, output_size=output_size,
                              weight_init_std=weight_init_std), dtype, seed)
        rng = as_rng(seed)
        sizes = [input_size, hidden_size, output_size]
        for i in (1, 2):
            std = init_std(weight_init_std, sizes[i - 1])
            W = self._param(f"W{i}", normal((sizes[i - 1], sizes[i]), std, rng, self.dtype))
            b = self._param(f"b{i}", np.zeros(sizes[i]))
            self._add(f"Affine{i}", Affine(W, b), grads={f"W{i}": "dW", f"b{i}": "db"})
            if i == 1:
                self._add("Relu1", Relu())
