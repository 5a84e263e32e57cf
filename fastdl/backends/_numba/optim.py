"""Adam's update in place, every operation rounded as NumPy rounds it (no FMA contraction)."""
from __future__ import annotations

import numpy as np
from numba import prange

from ._common import elementwise_chunks, exact_parallel, exact_serial, kernel, ro

__all__ = ["adam_update"]


@exact_serial
def _adam_range(p, g, m, v, lr, c1, c2, eps, tiny, zero):
    """One Adam step on flat slices, each operation rounded as NumPy rounds it; m and v
    below ``tiny`` (the smallest normal number) stored as ``zero``, as the reference."""
    for i in range(p.size):
        j = np.uint64(i)
        gi, m0, v0 = g[j], m[j], v[j]
        mi = m0 + c1 * (gi - m0)
        vi = v0 + c2 * (gi * gi - v0)
        if abs(mi) < tiny:
            mi = zero
        if abs(vi) < tiny:
            vi = zero
        m[j] = mi
        v[j] = vi
        p[j] = p[j] - lr * mi / (np.sqrt(vi) + eps)


@exact_parallel
def _adam(p, g, m, v, lr, c1, c2, eps, tiny, zero, chunks):
    n = p.size
    for t in prange(chunks):
        lo, hi = t * n // chunks, (t + 1) * n // chunks
        _adam_range(p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], lr, c1, c2, eps, tiny, zero)


@kernel
def adam_update(p, g, m, v, lr, beta1, beta2, eps):
    """One Adam step in place on p, m, v (C-contiguous, one dtype); bit for bit the reference's.

    The hyperparameters are rounded to the arrays' dtype first, as NumPy rounds
    a Python float that meets a float32 array.  Adam does ~4x the work per element
    of ReLU, so threads pay off from 16K elements."""
    t = p.dtype.type
    _adam(p.reshape(-1), ro(g).reshape(-1), m.reshape(-1), v.reshape(-1),
          t(lr), t(1 - beta1), t(1 - beta2), t(eps), t(np.finfo(t).tiny), t(0), elementwise_chunks(p.size, 16384))
