"""ReLU forward and backward in one pass each, bit for bit the reference's values."""
from __future__ import annotations

import numpy as np
from numba import prange

from ._common import elementwise_chunks, exact_parallel, exact_serial, kernel, ro

__all__ = ["relu_forward", "relu_backward"]


@exact_serial
def _relu_fwd_range(x, y, mask):
    for i in range(x.size):
        j = np.uint64(i)
        v = x[j]
        pos = v > 0
        mask[j] = pos
        y[j] = v if (pos or v != v) else 0.0  # NaN kept as it is; -0 -> +0, as np.maximum(x, 0)


@exact_parallel
def _relu_fwd(x, y, mask, chunks):
    n = x.size
    for t in prange(chunks):
        lo, hi = t * n // chunks, (t + 1) * n // chunks
        _relu_fwd_range(x[lo:hi], y[lo:hi], mask[lo:hi])


@exact_serial
def _relu_bwd_range(d, mask, dx, one, zero):
    for i in range(d.size):
        j = np.uint64(i)
        dx[j] = d[j] * (one if mask[j] else zero)  # a multiply by 1 or 0, as NumPy's dout * mask


@exact_parallel
def _relu_bwd(d, mask, dx, one, zero, chunks):
    n = d.size
    for t in prange(chunks):
        lo, hi = t * n // chunks, (t + 1) * n // chunks
        _relu_bwd_range(d[lo:hi], mask[lo:hi], dx[lo:hi], one, zero)


@kernel
def relu_forward(x):
    """x (any shape) -> (max(x, 0), x > 0) in one pass; bit for bit the reference's."""
    y = np.empty_like(x)
    mask = np.empty(x.shape, np.bool_)
    _relu_fwd(ro(x).reshape(-1), y.reshape(-1), mask.reshape(-1), elementwise_chunks(x.size))
    return y, mask


@kernel
def relu_backward(dout, mask):
    """dout, bool mask -> dout * mask in one pass; bit for bit the reference's."""
    dx = np.empty_like(dout)
    t = dout.dtype.type
    _relu_bwd(ro(dout).reshape(-1), ro(mask).reshape(-1), dx.reshape(-1), t(1), t(0),
              elementwise_chunks(dout.size))
    return dx
