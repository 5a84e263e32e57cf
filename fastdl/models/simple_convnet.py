"""SimpleConvNet: Conv - ReLU - Pool - Affine - ReLU - Affine - SoftmaxWithLoss (book chapter 7)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from numpy.typing import DTypeLike

from ..init import RNGLike, as_rng, fan_in, init_std, normal
from ..layers import Affine, Convolution, Pooling, Relu
from ..ops import conv_output_size
from ._base import Model

__all__ = ["SimpleConvNet"]

_CONV_DEFAULT = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}


class SimpleConvNet(Model):
    """x (N, C, H, W) (or flat (N, C*H*W)) -> scores (N, output_size).

    Book defaults: input (1, 28, 28); conv 30 filters 5x5, pad 0, stride 1;
    max-pool 2x2 stride 2; Affine 4320-100; Affine 100-10.  Parameters ``W1``
    (FN, C, FS, FS), ``b1``, ``W2`` (FN*PH*PW, hidden_size), ``b2``, ``W3``
    (hidden_size, output_size), ``b3``; weights ~ N(0, weight_init_std**2).
    """

    name = "simple_convnet"

    def __init__(self, input_dim: Sequence[int] = (1, 28, 28), conv_param: Optional[dict] = None,
                 hidden_size: int = 100, output_size: int = 10, weight_init_std: float | str = 0.01,
                 *, dtype: DTypeLike = np.float32, seed: RNGLike = None) -> None:
        cp = {**_CONV_DEFAULT, **(conv_param or {})}
        if set(cp) != set(_CONV_DEFAULT):
            raise ValueError(f"conv_param keys must be among {sorted(_CONV_DEFAULT)}, got {sorted(conv_param)}")
        input_dim = tuple(int(v) for v in input_dim)
        super().__init__(dict(input_dim=list(input_dim), conv_param=cp, hidden_size=hidden_size,
                              output_size=output_size, weight_init_std=weight_init_std), dtype, seed)
        self._input_shape = input_dim
        rng = as_rng(seed)
        C, H, W = input_dim
        fn, fs, pad, stride = cp["filter_num"], cp["filter_size"], cp["pad"], cp["stride"]
        oh, ow = conv_output_size(H, fs, stride, pad), conv_output_size(W, fs, stride, pad)
        if oh < 2 or ow < 2:
            raise ValueError(f"input {input_dim} is too small for a {fs}x{fs} conv and a 2x2 pool")
        pool_out = fn * (oh // 2) * (ow // 2)

        def weight(key, shape):
            return self._param(key, normal(shape, init_std(weight_init_std, fan_in(shape)), rng, self.dtype))

        conv = Convolution(weight("W1", (fn, C, fs, fs)), self._param("b1", np.zeros(fn)), stride, pad)
        conv.need_dx = False
        self._add("Conv1", conv, grads={"W1": "dW", "b1": "db"})
        self._add("Relu1", Relu())
        self._add("Pool1", Pooling(pool_h=2, pool_w=2, stride=2))
        self._add("Affine1", Affine(weight("W2", (pool_out, hidden_size)), self._param("b2", np.zeros(hidden_size))),
                  grads={"W2": "dW", "b2": "db"})
        self._add("Relu2", Relu())
        self._add("Affine2", Affine(weight("W3", (hidden_size, output_size)), self._param("b3", np.zeros(output_size))),
                  grads={"W3": "dW", "b3": "db"})
