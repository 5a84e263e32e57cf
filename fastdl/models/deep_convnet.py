"""DeepConvNet: the book's chapter 8 network for MNIST (99.35% with its trained weights).

    conv - relu - conv - relu - pool -
    conv - relu - conv - relu - pool -
    conv - relu - conv - relu - pool -
    affine - relu - dropout - affine - dropout - softmax

All convs are 3x3 stride 1 with pad 1, except the fourth with pad 2 (as the
book): on 28x28 input the maps are 28 -> 14 -> 16 -> 8 -> 8 -> 4, so the first
Affine has 64*4*4 = 1024 inputs.  Weights use He initialisation.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from numpy.typing import DTypeLike

from ..init import RNGLike, as_rng, he_normal
from ..layers import Affine, Convolution, Dropout, Pooling, Relu
from ..ops import conv_output_size
from ._base import Model

__all__ = ["DeepConvNet"]

_CONV_DEFAULTS = (
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
)


class DeepConvNet(Model):
    """x (N, C, H, W) (or flat (N, C*H*W)) -> scores (N, output_size).

    Parameters ``W1..W6`` (conv), ``W7`` (64*4*4, hidden_size), ``W8``
    (hidden_size, output_size) and ``b1..b8``.  Dropout (``dropout_ratio``,
    the book's 0.5 by default, in the book's non-inverted form) follows the
    hidden Affine and the output.
    """

    name = "deep_convnet"

    def __init__(self, input_dim: Sequence[int] = (1, 28, 28),
                 conv_param_1: Optional[dict] = None, conv_param_2: Optional[dict] = None,
                 conv_param_3: Optional[dict] = None, conv_param_4: Optional[dict] = None,
                 conv_param_5: Optional[dict] = None, conv_param_6: Optional[dict] = None,
                 hidden_size: int = 50, output_size: int = 10, *, dtype: DTypeLike = np.float32,
                 seed: RNGLike = None, dropout_ratio: float = 0.5) -> None:
        given = (conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6)
        cps = [{**d, **(g or {})} for d, g in zip(_CONV_DEFAULTS, given)]
        for i, cp in enumerate(cps):
            if set(cp) != set(_CONV_DEFAULTS[0]):
                raise ValueError(f"conv_param_{i + 1} keys must be among {sorted(_CONV_DEFAULTS[0])}, got {sorted(cp)}")
        input_dim = tuple(int(v) for v in input_dim)
        config = dict(input_dim=list(input_dim), hidden_size=hidden_size, output_size=output_size,
                      dropout_ratio=float(dropout_ratio))
        config.update({f"conv_param_{i + 1}": cp for i, cp in enumerate(cps)})
        super().__init__(config, dtype, seed)
        self._input_shape = input_dim
        rng = as_rng(seed)

        c, h, w = input_dim
        for i, cp in enumerate(cps, start=1):
            fn, fs, pad, stride = cp["filter_num"], cp["filter_size"], cp["pad"], cp["stride"]
            W = self._param(f"W{i}", he_normal((fn, c, fs, fs), rng, self.dtype))
            conv = Convolution(W, self._param(f"b{i}", np.zeros(fn)), stride, pad)
            conv.need_dx = i > 1
            self._add(f"Conv{i}", conv, grads={f"W{i}": "dW", f"b{i}": "db"})
            self._add(f"Relu{i}", Relu())
            c, h, w = fn, conv_output_size(h, fs, stride, pad), conv_output_size(w, fs, stride, pad)
            if i % 2 == 0:
                self._add(f"Pool{i // 2}", Pooling(pool_h=2, pool_w=2, stride=2))
                h, w = h // 2, w // 2
            if min(h, w) < 1:
                raise ValueError(f"input {input_dim} is too small for DeepConvNet")
        W7 = self._param("W7", he_normal((c * h * w, hidden_size), rng, self.dtype))
        self._add("Affine1", Affine(W7, self._param("b7", np.zeros(hidden_size))), grads={"W7": "dW", "b7": "db"})
        self._add("Relu7", Relu())
        self._add("Dropout1", Dropout(dropout_ratio, rng=int(rng.integers(2**63))))
        W8 = self._param("W8", he_normal((hidden_size, output_size), rng, self.dtype))
        self._add("Affine2", Affine(W8, self._param("b8", np.zeros(output_size))), grads={"W8": "dW", "b8": "db"})
        self._add("Dropout2", Dropout(dropout_ratio, rng=int(rng.integers(2**63))))
