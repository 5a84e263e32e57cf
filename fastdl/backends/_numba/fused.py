"""Fused layer paths on Numba: convolution + bias + ReLU, and ReLU + max-pool.

Numba's convolution is a GEMM whose epilogue lives in two layouts, so here the ReLU is
applied in place on the convolution's fresh output (no mask array; the backward masks dy
by ``y > 0`` in one pass), and the pool is run on x with its outputs fixed up afterwards
(``y = max(y, 0)``, argmax -1 where the window's maximum is not > 0, which passes no
gradient on): no ReLU pass over the pool's input.  Values are the unfused composition's.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._common import chunk_count, elementwise_chunks, enter, exact_parallel, exact_serial, kernel, ro
from .conv import conv2d_backward, conv2d_forward
from .pool import _pool_bwd, maxpool2d_forward

__all__ = ["conv2d_bias_relu_forward", "conv2d_bias_relu_backward",
           "relu_maxpool2d_forward", "relu_maxpool2d_backward", "conv2d_infer", "maxpool2d_infer"]


@exact_serial
def _relu_inplace_range(y):
    for i in range(y.size):
        j = np.uint64(i)
        v = y[j]
        if not v > 0 and v == v:  # NaN kept; -0 -> +0, as relu_forward
            y[j] = 0.0


@exact_serial
def _mask_by_output_range(d, y, dx, one, zero):
    for i in range(d.size):
        j = np.uint64(i)
        dx[j] = d[j] * (one if y[j] > 0 else zero)  # as relu_backward's dout * (x > 0)


@exact_serial
def _relu_pool_range(y, am):
    for i in range(y.size):
        j = np.uint64(i)
        v = y[j]
        if not v > 0:
            am[j] = -1
            if v == v:
                y[j] = 0.0


@exact_parallel
def _relu_inplace(y, chunks):
    n = y.size
    for t in prange(chunks):
        _relu_inplace_range(y[t * n // chunks:(t + 1) * n // chunks])


@exact_parallel
def _mask_by_output(d, y, dx, one, zero, chunks):
    n = d.size
    for t in prange(chunks):
        lo, hi = t * n // chunks, (t + 1) * n // chunks
        _mask_by_output_range(d[lo:hi], y[lo:hi], dx[lo:hi], one, zero)


def conv2d_bias_relu_forward(x, W, b, stride, pad):
    """relu(conv2d(x, W) + b) -> (y, state); NotImplemented where the convolution is."""
    out = conv2d_forward(x, W, b, stride, pad)
    if out is NotImplemented:
        return out
    y, state = out
    _relu_in_place(y)
    return y, (state, y)


@kernel
def _relu_in_place(y):
    _relu_inplace(y.reshape(-1), elementwise_chunks(y.size))


@kernel
def _masked(dy, y):
    dz = np.empty_like(dy)
    t = dy.dtype.type
    _mask_by_output(ro(dy).reshape(-1), ro(y).reshape(-1), dz.reshape(-1), t(1), t(0),
                    elementwise_chunks(dy.size))
    return dz


def conv2d_bias_relu_backward(dy, state, need_dx):
    """dy -> (dx or None, dW, db) of the fused forward: dy masked by y > 0, then the conv's."""
    conv_state, y = state
    return conv2d_backward(_masked(dy, y), conv_state, need_dx)


def relu_maxpool2d_forward(x, ph, pw, stride, pad):
    """maxpool2d(relu(x)) -> (y, state); the pool runs on x, its outputs are fixed up."""
    out = maxpool2d_forward(x, ph, pw, stride, pad)
    if out is NotImplemented:
        return out
    y, am = out
    _relu_pool_range(y.reshape(-1), am.reshape(-1))  # outputs only: a quarter of x or less
    return y, (am, x.shape, ph, pw, stride, pad)


@kernel
def relu_maxpool2d_backward(dy, state):
    """dy -> dx of the fused forward: scattered to the argmax cells, -1 (no gradient) skipped."""
    am, x_shape, ph, pw, stride, pad = state
    H, W = x_shape[2:]
    threads = enter()
    dx = np.empty(x_shape, dy.dtype)
    chunks = chunk_count(x_shape[0] * x_shape[1], threads)
    # _pool_bwd skips (and counts) every entry outside [0, H*W): here exactly the -1 ones.
    skipped = _pool_bwd(ro(dy), ro(am), H * W, chunks, dx.reshape(-1))
    if skipped != np.count_nonzero(am == -1):
        raise ValueError(f"argmax has entries outside [-1, {H * W})")
    return dx


def conv2d_infer(x, W, b, stride, pad, relu):
    """The forward alone (its state holds references only, dropped here)."""
    out = (conv2d_bias_relu_forward if relu else conv2d_forward)(x, W, b, stride, pad)
    return out if out is NotImplemented else out[0]


def maxpool2d_infer(x, ph, pw, stride, pad, relu):
    """The pooled values (Numba's pool kernel still writes its argmax, dropped here)."""
    out = (relu_maxpool2d_forward if relu else maxpool2d_forward)(x, ph, pw, stride, pad)
    return out if out is NotImplemented else out[0]
