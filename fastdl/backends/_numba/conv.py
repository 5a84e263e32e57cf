"""Convolution forward and backward: im2col per sample (or group of samples) and a GEMM.

Per sample, or per group of samples when images are small: im2col into a small
contiguous ``(K, columns)`` buffer, then ``W (FN, K) @ col`` with the bias fused into
the copy to the NCHW output.  For stride 1 each im2col row is one contiguous slice of
the padded image.  Small images with more im2col columns than filters go the other way
round, ``rows (G*P, K) @ W.T`` and a transposing copy, which OpenBLAS runs faster.
The backward pass rebuilds the buffer from the saved input, accumulates ``dW`` per
thread (reduced in a fixed order, so results repeat exactly for a given thread count),
computes ``dx`` as ``W.T @ dy`` followed by col2im, and skips ``dx`` when not needed.
Large outputs are allocated by NumPy before the call (NumPy asks for huge pages, which
halves the page-fault cost of a fresh 10-50 MB array compared with Numba's allocator).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..contract import conv_output_size
from ._common import chunk_count, enter, kernel, parallel, ro, serial
from .im2col import _col2im_kq, _crop_sample, _im2col_kq, _pad_sample, _rows_from_padded

__all__ = ["conv2d_forward", "conv2d_backward"]


# Small images (OH*Q < _MIN_COLS) are processed in groups of G samples: their
# im2col columns sit side by side in one (K, G*OH*Q) buffer of at most about
# _COL_BYTES, so that one GEMM covers the group.  Larger images go one at a time.
_MIN_COLS = 256
_COL_BYTES = 1 << 20


def _group(K: int, P: int, itemsize: int) -> int:
    if P >= _MIN_COLS:
        return 1
    return max(1, min(-(-_MIN_COLS * 4 // P), _COL_BYTES // max(1, K * P * itemsize)))


@serial
def _conv_fwd_range(x, W2, b, kh, kw, stride, pad, OH, OW, Q, G, lo, hi, y):
    """y[lo:hi] = conv(x[lo:hi]) + b, G samples per GEMM."""
    C, H, W = x.shape[1:]
    CHW = C * H * W
    xf, yf = x.reshape(x.size), y.reshape(y.size)
    Hp, Wp = H + 2 * pad, W + 2 * pad
    FN, K = W2.shape
    L = OH * Q
    xflat = np.zeros(C * Hp * Wp + kw, x.dtype)  # kw spare zeros: the last stride-1 slice overruns
    col = np.empty((K, G * L), x.dtype)
    out = np.empty((FN, G * L), x.dtype)
    for n0 in range(lo, hi, G):
        g = min(G, hi - n0)
        if g * L != col.shape[1]:  # the last, smaller group
            col = np.empty((K, g * L), x.dtype)
            out = np.empty((FN, g * L), x.dtype)
        for j in range(g):
            n = n0 + j
            _pad_sample(xf[n * CHW:(n + 1) * CHW], C, H, W, pad, xflat)  # the border stays 0
            _im2col_kq(xflat, C, Hp, Wp, kh, kw, stride, OH, OW, Q, col, j * L)
        np.dot(W2, col, out)
        of = out.reshape(out.size)
        for j in range(g):
            for f in range(FN):
                bf = b[f]
                for oy in range(OH):
                    s = np.uint64(f * g * L + j * L + oy * Q)
                    d = np.uint64((((n0 + j) * FN + f) * OH + oy) * OW)
                    for ox in range(OW):
                        yf[d + np.uint64(ox)] = of[s + np.uint64(ox)] + bf


@serial
def _conv_fwd_rows_range(x, W2T, b, kh, kw, stride, pad, OH, OW, G, lo, hi, y):
    """y[lo:hi] = conv(x[lo:hi]) + b through im2col rows: (G*P, K) @ W2T (K, FN),
    then a transposing copy (with the bias) into NCHW.  G samples per GEMM."""
    C, H, W = x.shape[1:]
    CHW, P = C * H * W, OH * OW
    K, FN = W2T.shape
    Hp, Wp = H + 2 * pad, W + 2 * pad
    xf, yf = x.reshape(x.size), y.reshape(y.size)
    xp = np.zeros(C * Hp * Wp, x.dtype)
    rows = np.empty((G * P, K), x.dtype)
    out = np.empty((G * P, FN), x.dtype)
    for n0 in range(lo, hi, G):
        g = min(G, hi - n0)
        if g * P != rows.shape[0]:  # the last, smaller group
            rows = np.empty((g * P, K), x.dtype)
            out = np.empty((g * P, FN), x.dtype)
        rf = rows.reshape(rows.size)
        for j in range(g):
            n = n0 + j
            _pad_sample(xf[n * CHW:(n + 1) * CHW], C, H, W, pad, xp)
            _rows_from_padded(xp, C, Hp, Wp, kh, kw, stride, OH, OW, rf[j * P * K:(j + 1) * P * K])
        np.dot(rows, W2T, out)
        of = out.reshape(out.size)
        Fu = np.uint64(FN)
        for j in range(g):
            for f in range(FN):
                bf = b[f]
                d = np.uint64(((n0 + j) * FN + f) * P)
                s = np.uint64(j * P * FN + f)
                for q in range(P):
                    yf[d + np.uint64(q)] = of[s + np.uint64(q) * Fu] + bf


@parallel
def _conv_fwd_rows(x, W2T, b, kh, kw, stride, pad, OH, OW, G, chunks, y):
    N = x.shape[0]
    for t in prange(chunks):
        _conv_fwd_rows_range(x, W2T, b, kh, kw, stride, pad, OH, OW, G, t * N // chunks, (t + 1) * N // chunks, y)


@parallel
def _conv_fwd(x, W2, b, kh, kw, stride, pad, OH, OW, Q, G, chunks, y):
    N = x.shape[0]
    for t in prange(chunks):
        _conv_fwd_range(x, W2, b, kh, kw, stride, pad, OH, OW, Q, G, t * N // chunks, (t + 1) * N // chunks, y)


@serial
def _conv_bwd_range(dy, x, W2, W2T, kh, kw, stride, pad, G, lo, hi, dx, dW, db, k_major):
    """Add the gradients of samples lo..hi-1 into dW and db (FN,) float64; write
    their dx when dx is not empty.  G samples per GEMM.

    The buffers have exactly OH*OW columns per sample (no padding columns as in
    the forward pass): dy then arrives as whole contiguous planes, which measured
    faster overall than the forward's long im2col rows.  dW is (FN, K), or (K, FN)
    when ``k_major``: OpenBLAS runs this product 1.1-1.5x faster with the longer
    side as the rows (measured on the book's layers)."""
    C, H, W = x.shape[1:]
    CHW = C * H * W
    Hp, Wp = H + 2 * pad, W + 2 * pad
    FN, K = W2.shape
    OH, OW = dy.shape[2], dy.shape[3]
    P = OH * OW
    xflat = np.zeros(C * Hp * Wp, dy.dtype)  # padded input sample: the border stays 0
    dxp = np.empty(C * Hp * Wp, dy.dtype)  # padded dx of one sample
    xf, dyf, dxf = x.reshape(x.size), dy.reshape(dy.size), dx.reshape(dx.size)
    col = np.empty((K, G * P), dy.dtype)
    dcol = np.empty((K, G * P), dy.dtype)
    dyg = np.empty((FN, G * P), dy.dtype)
    tmp = np.empty(dW.shape, dy.dtype)
    for n0 in range(lo, hi, G):
        g = min(G, hi - n0)
        if g * P != col.shape[1]:  # the last, smaller group
            col = np.empty((K, g * P), dy.dtype)
            dcol = np.empty((K, g * P), dy.dtype)
            dyg = np.empty((FN, g * P), dy.dtype)
        dgf = dyg.reshape(dyg.size)
        for j in range(g):
            for f in range(FN):
                src = np.uint64(((n0 + j) * FN + f) * P)
                dst = np.uint64(f * g * P + j * P)
                for i in range(P):
                    dgf[dst + np.uint64(i)] = dyf[src + np.uint64(i)]
            n = n0 + j
            _pad_sample(xf[n * CHW:(n + 1) * CHW], C, H, W, pad, xflat)
            _im2col_kq(xflat, C, Hp, Wp, kh, kw, stride, OH, OW, OW, col, j * P)
        for f in range(FN):
            acc = 0.0
            base = np.uint64(f * g * P)
            for i in range(g * P):
                acc += dgf[base + np.uint64(i)]
            db[f] += acc
        if k_major:
            np.dot(col, dyg.T, tmp)
        else:
            np.dot(dyg, col.T, tmp)
        dW += tmp
        if dx.shape[0]:
            np.dot(W2T, dyg, dcol)
            for j in range(g):
                n = n0 + j
                dxp[:] = 0
                _col2im_kq(dcol, j * P, C, Hp, Wp, kh, kw, stride, OH, OW, dxp)
                _crop_sample(dxp, C, H, W, pad, dxf[n * CHW:(n + 1) * CHW])


@parallel
def _conv_bwd(dy, x, W2, W2T, kh, kw, stride, pad, G, chunks, dx, k_major):
    N = x.shape[0]
    FN, K = W2.shape
    dW_parts = np.zeros((chunks, K, FN) if k_major else (chunks, FN, K), dy.dtype)
    db_parts = np.zeros((chunks, FN), np.float64)
    for t in prange(chunks):
        _conv_bwd_range(dy, x, W2, W2T, kh, kw, stride, pad, G, t * N // chunks, (t + 1) * N // chunks,
                        dx, dW_parts[t], db_parts[t], k_major)
    return dW_parts, db_parts


def _rows_layout(K: int, FN: int, P: int) -> bool:
    """Small images with more im2col columns than filters (DeepConvNet conv3, conv5, conv6)
    go through im2col rows (G*P, K): OpenBLAS runs (G*P, K) @ (K, FN) 1.3-1.8x faster
    than (FN, K) @ (K, G*P) on those shapes (measured), and no padding columns are computed."""
    return K > FN and P < _MIN_COLS


def _row_width(Wd: int, OW: int, stride: int, pad: int) -> int:
    """Q: the padded width for stride 1 when at most 1/6 of the columns are padding
    (contiguous im2col rows), else OW."""
    Wp = Wd + 2 * pad
    return Wp if stride == 1 and 6 * (Wp - OW) <= Wp else OW


@kernel
def conv2d_forward(x, W, b, stride, pad):
    """x (N, C, H, W), W (FN, C, kh, kw), b (FN,) -> y (N, FN, OH, OW) and a context for backward.

    The context keeps a reference to ``x`` (not a copy): do not modify ``x``
    in place before the backward pass.
    """
    FN, C, kh, kw = W.shape
    if FN == 0 or C == 0:
        return NotImplemented  # degenerate (no filters or no channels): the reference handles it
    threads = enter(uses_blas=True)
    N, _, H, Wd = x.shape
    OH, OW = conv_output_size(H, kh, stride, pad), conv_output_size(Wd, kw, stride, pad)
    K = C * kh * kw
    x, W2 = ro(x), ro(W.reshape(FN, K))
    y = np.empty((N, FN, OH, OW), x.dtype)  # NumPy's allocator: huge pages, fewer page faults
    chunks = chunk_count(N, threads)
    if _rows_layout(K, FN, OH * OW):
        G = _group(K, OH * OW, x.itemsize)
        _conv_fwd_rows(x, ro(np.ascontiguousarray(W2.T)), ro(b), kh, kw, stride, pad, OH, OW, G, chunks, y)
    else:
        Q = _row_width(Wd, OW, stride, pad)
        _conv_fwd(x, W2, ro(b), kh, kw, stride, pad, OH, OW, Q, _group(K, OH * Q, x.itemsize), chunks, y)
    return y, (x, W2, W.shape, stride, pad)


@kernel
def conv2d_backward(dy, ctx, need_dx):
    """dy (N, FN, OH, OW) -> (dx (N, C, H, W) or None, dW (FN, C, kh, kw), db (FN,)).

    dx is ``W2.T @ dy`` per group of samples, added back into the image by
    col2im (measured faster here than convolving dy with the flipped filters,
    which needs an im2col of FN*kh*kw rows instead of C*kh*kw).
    """
    x, W2, w_shape, stride, pad = ctx
    FN, C, kh, kw = w_shape
    threads = enter(uses_blas=True)
    N, _, H, Wd = x.shape
    chunks = chunk_count(N, threads)
    K = C * kh * kw
    G = _group(K, dy.shape[2] * dy.shape[3], dy.itemsize)
    W2T = ro(np.ascontiguousarray(W2.T))
    dx = np.empty((N if need_dx else 0, C, H, Wd), dy.dtype)  # NumPy's allocator: fewer page faults
    k_major = K > FN
    dW, db = _conv_bwd(ro(dy), x, W2, W2T, kh, kw, stride, pad, G, chunks, dx, k_major)
    # Per-thread partial sums, reduced in chunk order: repeatable for a given thread count.
    dW = dW.sum(axis=0)
    if k_major:
        dW = np.ascontiguousarray(dW.T)
    return (dx if need_dx else None), dW.reshape(w_shape), db.sum(axis=0).astype(dy.dtype)
