"""Fused softmax cross-entropy: one row at a time, parallel over rows, sums in float64.

The row maximum is subtracted before the exp-sum, and the loss is formed as
``(max - z[label]) + log(sum)`` (never ``max + log(sum)``, which loses log(sum) next to a
logit of 1e15).  The row statistics may use fast-math; the loss and the label's gradient
are computed without it, so LLVM cannot re-associate the shift back.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._common import enter, exact_parallel, kernel, ro, serial

__all__ = ["softmax_cross_entropy"]

@serial
def _softmax_row(row, e):
    """e = exp(row - max(row)) in the row's dtype (as the reference: float32
    exponentials are about twice as fast); returns (max, sum) with the sum
    accumulated in float64.

    The max propagates NaN, so a row holding NaN gives NaN everywhere."""
    m = row[0]
    for v in row:
        m = v if (v > m) | (v != v) else m
    s = 0.0
    for k in range(row.shape[0]):
        ek = np.exp(row[k] - m)
        e[k] = ek
        s += ek
    return np.float64(m), s


@exact_parallel
def _sce_labels(z, t):
    N, K = z.shape
    d = np.empty((N, K), z.dtype)
    nll = np.empty(N, np.float64)
    inv_n = 1.0 / max(N, 1)
    for i in prange(N):
        row, di, ti = z[i], d[i], t[i]
        m, s = _softmax_row(row, di)
        lse = np.log(s)
        z_t = np.float64(row[ti]) - m  # <= 0: the label's logit, shifted
        nll[i] = lse - z_t
        scale = (1.0 / s) * inv_n
        for k in range(K):
            di[k] *= scale
        di[ti] = (np.exp(z_t - lse) - 1.0) * inv_n
    return nll, d


@exact_parallel
def _sce_targets(z, t):
    N, K = z.shape
    d = np.empty((N, K), z.dtype)
    nll = np.empty(N, np.float64)
    inv_n = 1.0 / max(N, 1)
    for i in prange(N):
        row, di, ti = z[i], d[i], t[i]
        m, s = _softmax_row(row, di)
        lse, inv_s = np.log(s), 1.0 / s
        acc = 0.0
        for k in range(K):
            tk = np.float64(ti[k])
            if tk != 0:  # 0 * log(0) counts as 0
                acc += tk * ((np.float64(row[k]) - m) - lse)
            di[k] = (di[k] * inv_s - tk) * inv_n
        nll[i] = -acc
    return nll, d


@kernel
def softmax_cross_entropy(logits, t):
    """Mean cross-entropy of softmax(logits) against t, and its gradient.

    logits (N, K); t int64 (N,) class indices or (N, K) target distribution.
    Returns ``(loss: float, dlogits (N, K))`` with ``dlogits = (softmax - t) / N``.
    """
    N, K = logits.shape
    if K == 0:
        return NotImplemented  # no classes (the row kernels need one logit): the reference handles it
    enter()
    rows = _sce_labels if t.ndim == 1 else _sce_targets
    nll, d = rows(ro(logits), ro(t))
    return (float(nll.sum() / N) if N else float("nan")), d
