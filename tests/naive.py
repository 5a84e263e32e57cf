"""Slow, obvious implementations of the kernels: the oracle every backend is checked against.

Everything is computed in float64 with explicit loops over output positions
(and, where it matters for the semantics, over window cells), straight from
the definitions in DESIGN.md.  Use small shapes only.
"""
from __future__ import annotations

import math

import numpy as np


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def _padded(x: np.ndarray, pad: int) -> np.ndarray:
    N, C, H, W = x.shape
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    xp[:, :, pad:pad + H, pad:pad + W] = x
    return xp


def im2col(x, kh, kw, stride, pad):
    """col[(n, oy, ox), (c, ky, kx)] = x[n, c, oy*stride - pad + ky, ox*stride - pad + kx] (0 outside)."""
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, stride, pad), out_size(W, kw, stride, pad)
    col = np.zeros((N * OH * OW, C * kh * kw))
    for n in range(N):
        for oy in range(OH):
            for ox in range(OW):
                for c in range(C):
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
                            if 0 <= iy < H and 0 <= ix < W:
                                col[(n * OH + oy) * OW + ox, (c * kh + ky) * kw + kx] = x[n, c, iy, ix]
    return col


def col2im(col, x_shape, kh, kw, stride, pad):
    """The adjoint of :func:`im2col`: every col entry added to the input cell it was read from."""
    N, C, H, W = x_shape
    OH, OW = out_size(H, kh, stride, pad), out_size(W, kw, stride, pad)
    x = np.zeros((N, C, H, W))
    for n in range(N):
        for oy in range(OH):
            for ox in range(OW):
                for c in range(C):
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
                            if 0 <= iy < H and 0 <= ix < W:
                                x[n, c, iy, ix] += col[(n * OH + oy) * OW + ox, (c * kh + ky) * kw + kx]
    return x


def conv2d(x, W, b, stride, pad):
    """Direct cross-correlation: y[n, f, oy, ox] = b[f] + sum(window(n, oy, ox) * W[f])."""
    N, C, H, Wd = x.shape
    FN, _, kh, kw = W.shape
    OH, OW = out_size(H, kh, stride, pad), out_size(Wd, kw, stride, pad)
    xp = _padded(x, pad)
    W = W.astype(np.float64)
    y = np.zeros((N, FN, OH, OW))
    for n in range(N):
        for oy in range(OH):
            for ox in range(OW):
                win = xp[n, :, oy * stride:oy * stride + kh, ox * stride:ox * stride + kw]
                for f in range(FN):
                    y[n, f, oy, ox] = b[f] + np.sum(win * W[f])
    return y


def conv2d_grads(x, W, dy, stride, pad):
    """(dx, dW, db) of :func:`conv2d` for upstream gradient dy, by the chain rule per output cell."""
    N, C, H, Wd = x.shape
    FN, _, kh, kw = W.shape
    OH, OW = dy.shape[2:]
    xp = _padded(x, pad)
    W = W.astype(np.float64)
    dxp = np.zeros_like(xp)
    dW = np.zeros(W.shape)
    db = np.zeros(FN)
    for n in range(N):
        for oy in range(OH):
            for ox in range(OW):
                ys, xs = slice(oy * stride, oy * stride + kh), slice(ox * stride, ox * stride + kw)
                for f in range(FN):
                    g = float(dy[n, f, oy, ox])
                    db[f] += g
                    dW[f] += g * xp[n, :, ys, xs]
                    dxp[n, :, ys, xs] += g * W[f]
    return dxp[:, :, pad:pad + H, pad:pad + Wd], dW, db


def maxpool2d(x, ph, pw, stride, pad):
    """(y, argmax) by scanning each window's real cells in row-major order.

    Padding cells are -inf, so they never beat a real cell; scanning only real
    cells therefore gives the window maximum, and "all real cells -inf" points
    at the first real cell.  The first maximum wins ties; the first NaN wins
    over everything.
    """
    N, C, H, W = x.shape
    OH, OW = out_size(H, ph, stride, pad), out_size(W, pw, stride, pad)
    y = np.empty((N, C, OH, OW))
    am = np.empty((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for oy in range(OH):
                for ox in range(OW):
                    best, where = None, None
                    for iy in range(oy * stride - pad, oy * stride - pad + ph):
                        for ix in range(ox * stride - pad, ox * stride - pad + pw):
                            if not (0 <= iy < H and 0 <= ix < W):
                                continue
                            v = float(x[n, c, iy, ix])
                            if best is None or (math.isnan(v) and not math.isnan(best)) or v > best:
                                best, where = v, iy * W + ix
                    y[n, c, oy, ox], am[n, c, oy, ox] = best, where
    return y, am


def maxpool2d_backward(dy, argmax, x_shape):
    """dx: each dy cell added to the input cell its argmax names."""
    N, C, H, W = x_shape
    dx = np.zeros((N, C, H * W))
    for n in range(N):
        for c in range(C):
            for o, i in enumerate(argmax[n, c].ravel()):
                dx[n, c, i] += dy[n, c].ravel()[o]
    return dx.reshape(x_shape)


def softmax_cross_entropy(logits, t):
    """(mean loss, dlogits) from per-row log-sum-exp; t labels (N,) or targets (N, K)."""
    z = np.asarray(logits, dtype=np.float64)
    N, K = z.shape
    target = np.zeros((N, K))
    if np.asarray(t).ndim == 1:
        target[np.arange(N), t] = 1.0
    else:
        target[:] = t
    total = 0.0
    d = np.zeros((N, K))
    for i in range(N):
        m = max(z[i])
        lse = m + math.log(sum(math.exp(v - m) for v in z[i]))
        for k in range(K):
            if target[i, k] != 0:
                total -= target[i, k] * (z[i, k] - lse)
            d[i, k] = (math.exp(z[i, k] - lse) - target[i, k]) / N
    return (total / N if N else float("nan")), d
