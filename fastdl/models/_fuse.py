"""The layer-sequence compiler: runs of the book's layers that one fused kernel can do.

A model's ``layers`` stay the book's classes, in the book's order.  Before each forward
pass :func:`compile_layers` reads that sequence and replaces

- ``Convolution -> Relu -> Pooling`` by one :func:`fastdl.ops.conv2d_relu_maxpool2d_forward`
  (the convolution, then ReLU and pool in one pass with no mask; on ``cpp`` a few samples at
  a time, so the convolution's output stays in cache; the backward routes dy through the
  pool's argmax straight to the convolution's gradients),
- ``Convolution -> Relu`` by one :func:`fastdl.ops.conv2d_bias_relu_forward` (bias and
  ReLU in the convolution's store; the backward masks dy by the output),
- ``Relu -> Pooling`` by one :func:`fastdl.ops.relu_maxpool2d_forward`,

and leaves every other layer as it is.  For inference (``train=False``, ``Model.predict``
without ``train_flg``) the same runs, and a lone Convolution or Pooling, become
:func:`fastdl.ops.conv2d_infer` / :func:`fastdl.ops.maxpool2d_infer` steps, and
``Affine -> Relu`` or ``Affine -> Sigmoid`` one :func:`fastdl.ops.affine_forward`: the forward
values alone, with no argmax, mask or context kept for a backward pass.  The fused steps set the gradients on the
book's layers (``Convolution.dW`` and ``.db``), so optimizers and ``Model.gradient``
see no difference; the values are the unfused layers' to the test matrix's tolerances.

The unfused path is one switch away: ``fastdl.set_fusion(False)`` (or ``FASTDL_FUSION=0``
in the environment at import), read at every forward pass.  ``fused_counts()`` says how
often each fused step ran (the tests use it to see which path ran).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, Optional

import numpy as np

from .. import ops
from ..backend import fusion_enabled
from ..layers import Affine, Convolution, Pooling, Relu, Sigmoid, _one_float_dtype

__all__ = ["compile_layers", "fused_counts", "ConvRelu", "ReluPool", "ConvReluPool", "Infer", "AffineInfer"]

_runs: Counter = Counter()


def fused_counts() -> dict[str, int]:
    """How many forward passes each fused step ran in this process, by step name."""
    return dict(_runs)


class ConvRelu:
    """``Convolution -> Relu`` as one kernel: relu(conv(x) + b)."""

    name = "conv_relu"

    def __init__(self, conv: Convolution) -> None:
        self.conv = conv
        self._ctx: Optional[ops.ConvContext] = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        c = self.conv
        _runs[self.name] += 1
        y, self._ctx = ops.conv2d_bias_relu_forward(x, c.W, c.b, c.stride, c.pad)
        return y

    def backward(self, dout: np.ndarray) -> Optional[np.ndarray]:
        c = self.conv
        dx, c.dW, c.db = ops.conv2d_bias_relu_backward(dout, self._ctx, c.need_dx)
        return dx


class ReluPool:
    """``Relu -> Pooling`` as one kernel: maxpool(relu(x))."""

    name = "relu_pool"

    def __init__(self, pool: Pooling) -> None:
        self.pool = pool
        self._ctx: Optional[ops.PoolContext] = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        p = self.pool
        _runs[self.name] += 1
        y, self._ctx = ops.relu_maxpool2d_forward(x, p.pool_h, p.pool_w, p.stride, p.pad)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return ops.relu_maxpool2d_backward(dout, self._ctx)


class ConvReluPool:
    """``Convolution -> Relu -> Pooling`` as one :func:`fastdl.ops.conv2d_relu_maxpool2d_forward`:
    maxpool(relu(conv(x) + b)); on ``cpp`` the convolution's output stays in cache."""

    name = "conv_relu_pool"

    def __init__(self, conv: Convolution, pool: Pooling) -> None:
        self.conv = conv
        self.pool = pool
        self._ctx: Optional[ops.ConvPoolContext] = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        c, p = self.conv, self.pool
        _runs[self.name] += 1
        y, self._ctx = ops.conv2d_relu_maxpool2d_forward(c._check_input(x), c.W, c.b, c.stride, c.pad,
                                                         p.pool_h, p.pool_w, p.stride, p.pad)
        return y

    def backward(self, dout: np.ndarray) -> Optional[np.ndarray]:
        c = self.conv
        dx, c.dW, c.db = ops.conv2d_relu_maxpool2d_backward(dout, self._ctx, c.need_dx)
        return dx


def _inference_only() -> None:
    """The backward of an inference step: there is none."""
    raise RuntimeError("this forward pass ran for inference (train_flg=False): it kept nothing "
                       "for a backward pass; run loss(x, t, train_flg=True) first")


class Infer:
    """An inference step: ``conv`` (``relu``: conv + bias + ReLU) and/or a max-pool, forward only."""

    def __init__(self, conv: Optional[Convolution], relu: bool, pool: Optional[Pooling]) -> None:
        self.conv, self.relu, self.pool = conv, relu, pool
        self.name = "infer_" + "_".join(n for n, on in (("conv", conv), ("relu", relu), ("pool", pool)) if on)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _runs[self.name] += 1
        c, p = self.conv, self.pool
        if c is not None:
            x = ops.conv2d_infer(x, c.W, c.b, c.stride, c.pad, relu=self.relu)
        if p is not None:
            x = ops.maxpool2d_infer(x, p.pool_h, p.pool_w, p.stride, p.pad, relu=self.relu and c is None)
        return x

    def backward(self, dout: np.ndarray) -> None:
        _inference_only()


class AffineInfer:
    """An inference step: ``Affine -> Relu`` or ``Affine -> Sigmoid`` as one
    :func:`fastdl.ops.affine_forward` (the activation applied as the product is stored)."""

    def __init__(self, affine: Affine, act: str) -> None:
        self.affine, self.act = affine, act
        self.name = f"infer_affine_{act}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        a = self.affine
        x = np.asarray(x)
        if not (x.ndim >= 2 and math.prod(x.shape[1:]) == a.W.shape[0] and _one_float_dtype(x, a.W, a.b)
                and a.b.ndim == 1):
            return self._unfused(x)  # the layers' own checks and dtype rules
        _runs[self.name] += 1
        return ops.affine_forward(x.reshape(x.shape[0], a.W.shape[0]), a.W, a.b, self.act)

    def _unfused(self, x: np.ndarray) -> np.ndarray:
        y = self.affine.forward(x)
        return Relu().forward(y) if self.act == "relu" else Sigmoid().forward(y)

    def backward(self, dout: np.ndarray) -> None:
        _inference_only()


def _infer_step(a: Any, b: Any, c: Any) -> tuple[Optional[Any], int]:
    """The inference step starting at layer a (and how many layers it takes), or (None, 1)."""
    if _is(a, Affine) and (_is(b, Relu) or _is(b, Sigmoid)):
        return AffineInfer(a, "relu" if _is(b, Relu) else "sigmoid"), 2
    if _is(a, Convolution) and _is(b, Relu) and _is(c, Pooling):
        return Infer(a, True, c), 3
    if _is(a, Convolution) and _is(b, Relu):
        return Infer(a, True, None), 2
    if _is(a, Relu) and _is(b, Pooling):
        return Infer(None, True, b), 2
    if _is(a, Convolution):
        return Infer(a, False, None), 1
    if _is(a, Pooling):
        return Infer(None, False, a), 1
    return None, 1


def _is(layer: Any, cls: type) -> bool:
    return type(layer) is cls  # a subclass may change forward: leave it alone


def compile_layers(layers: Iterable[Any], train: bool = True) -> list[Any]:
    """The steps that run ``layers`` (in order): fused runs where allowed, else the layers.

    Each step has ``forward(x)`` and ``backward(dout)`` (inference steps, ``train=False``,
    have no backward).  With fusion off (:func:`fastdl.set_fusion`), the layers themselves.
    """
    seq = list(layers)
    if not fusion_enabled():
        return seq
    steps: list[Any] = []
    i = 0
    while i < len(seq):
        a, b = seq[i], seq[i + 1] if i + 1 < len(seq) else None
        c = seq[i + 2] if i + 2 < len(seq) else None
        if not train:
            step, used = _infer_step(a, b, c)
            steps.append(step if step is not None else a)
            i += used
            continue
        if _is(a, Convolution) and _is(b, Relu) and _is(c, Pooling):
            steps.append(ConvReluPool(a, c))
            i += 3
        elif _is(a, Convolution) and _is(b, Relu):
            steps.append(ConvRelu(a))
            i += 2
        elif _is(a, Relu) and _is(b, Pooling):
            steps.append(ReluPool(b))
            i += 2
        else:
            steps.append(a)
            i += 1
    return steps
