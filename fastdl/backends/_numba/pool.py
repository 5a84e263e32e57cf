"""Max pooling: each window scanned directly (a dedicated 2x2 / stride 2 / pad 0 loop);
the backward pass zeroes each input plane and scatters ``dy`` through ``argmax`` while the
plane is in L1.  Parallel over (sample, channel) planes.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..contract import conv_output_size
from ._common import chunk_count, enter, kernel, parallel, ro, serial

__all__ = ["maxpool2d_forward", "maxpool2d_backward"]


# Windows are scanned backwards with ``v >= best or v is NaN`` as branch-free
# selects: the earliest maximum wins ties, and the earliest NaN wins over all.

@serial
def _pool_plane(xp, ph, pw, stride, pad, yp, ap):
    """Max pooling of one plane xp (H, W) into yp, ap (OH, OW); padding never wins."""
    H, W = xp.shape
    OH, OW = yp.shape
    for oy in range(OH):
        y0 = oy * stride - pad
        ylo, yhi = max(y0, 0), min(y0 + ph, H)
        for ox in range(OW):
            x0 = ox * stride - pad
            xlo, xhi = max(x0, 0), min(x0 + pw, W)
            best = xp[yhi - 1, xhi - 1]
            bi = (yhi - 1) * W + xhi - 1
            for iy in range(yhi - 1, ylo - 1, -1):
                row = xp[iy]
                for ix in range(xhi - 1, xlo - 1, -1):
                    v = row[ix]
                    m = (v >= best) | (v != v)
                    best = v if m else best
                    bi = iy * W + ix if m else bi
            yp[oy, ox] = best
            ap[oy, ox] = bi


@parallel
def _pool_fwd(x, ph, pw, stride, pad, y, am):
    N, C = x.shape[:2]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        _pool_plane(x[n, c], ph, pw, stride, pad, y[n, c], am[n, c])


@parallel
def _pool_fwd_2x2(x, OH, OW, y, am):
    """2x2 / stride 2 / pad 0 on flat planes; y, am flat (N*C*OH*OW,)."""
    N, C, H, W = x.shape
    HW, OHW = H * W, OH * OW
    xf = x.reshape(N * C * HW)
    one, Wu = np.uint64(1), np.uint64(W)
    for nc in prange(N * C):
        for oy in range(OH):
            o0 = np.uint64(nc * OHW + oy * OW)
            base = 2 * oy * W
            r0 = np.uint64(nc * HW + base)
            for ox in range(OW):
                i = r0 + np.uint64(2 * ox)
                best = xf[i + Wu + one]
                k = W + 1
                v = xf[i + Wu]
                m = (v >= best) | (v != v)
                best = v if m else best
                k = W if m else k
                v = xf[i + one]
                m = (v >= best) | (v != v)
                best = v if m else best
                k = 1 if m else k
                v = xf[i]
                m = (v >= best) | (v != v)
                best = v if m else best
                k = 0 if m else k
                o = o0 + np.uint64(ox)
                y[o] = best
                am[o] = base + 2 * ox + k


@serial
def _pool_bwd_planes(g, a, HW, OHW, dx):
    """Whole planes: dx (planes*HW,) = 0, then dx[a[o]] += g[o] plane by plane in
    output order; returns the number of argmax entries outside [0, HW) (skipped).

    Planes go in blocks of about 16 KB: each block is zeroed and scattered into
    while it sits in L1."""
    planes = dx.size // HW
    hw, ohw = np.uint64(HW), np.uint64(OHW)
    block = max(1, 4096 // HW)
    bad = 0
    for p0 in range(0, planes, block):
        nb = min(block, planes - p0)
        d0 = np.uint64(p0) * hw
        for i in range(nb * HW):
            dx[d0 + np.uint64(i)] = 0
        for p in range(nb):
            base = d0 + np.uint64(p) * hw
            o0 = np.uint64(p0 + p) * ohw
            for o in range(OHW):
                k = o0 + np.uint64(o)
                i = np.uint64(a[k])  # a negative index wraps to a huge one: caught by the test
                if i < hw:
                    dx[base + i] += g[k]
                else:
                    bad += 1
    return bad


@parallel
def _pool_bwd(dy, am, HW, chunks, dx):
    """dx (N*C*HW,) = dy scattered to the argmax cells (sums where windows
    overlap, in output order as the reference); returns the number of bad entries.
    Each thread takes a contiguous range of (sample, channel) planes."""
    N, C, OH, OW = dy.shape
    NC, OHW = N * C, OH * OW
    g, a = dy.reshape(NC * OHW), am.reshape(NC * OHW)
    bad = np.zeros(chunks, np.int64)
    for t in prange(chunks):
        lo, hi = t * NC // chunks, (t + 1) * NC // chunks
        bad[t] = _pool_bwd_planes(g[lo * OHW:hi * OHW], a[lo * OHW:hi * OHW], HW, OHW, dx[lo * HW:hi * HW])
    return bad.sum()


@kernel
def maxpool2d_forward(x, ph, pw, stride, pad):
    """x (N, C, H, W) -> (y (N, C, OH, OW), argmax (N, C, OH, OW) int64).

    Padding acts as -inf, ties go to the first maximum in row-major window
    order, the first NaN of a window wins; ``argmax`` is ``iy * W + ix``.
    """
    N, C, H, W = x.shape
    if H == 0 or W == 0:
        return NotImplemented  # windows made of padding only: the reference handles it
    enter()
    OH, OW = conv_output_size(H, ph, stride, pad), conv_output_size(W, pw, stride, pad)
    # Outputs come from NumPy's allocator (huge pages for large arrays): fewer page faults.
    y = np.empty((N, C, OH, OW), x.dtype)
    am = np.empty((N, C, OH, OW), np.int64)
    if ph == pw == stride == 2 and pad == 0:
        _pool_fwd_2x2(ro(x), OH, OW, y.reshape(-1), am.reshape(-1))
    else:
        _pool_fwd(ro(x), ph, pw, stride, pad, y, am)
    return y, am


@kernel
def maxpool2d_backward(dy, argmax, x_shape, ph, pw, stride, pad):
    """Scatter dy (N, C, OH, OW) to the argmax cells; returns dx of shape x_shape.

    Raises:
        ValueError: ``argmax`` points outside the input plane.
    """
    H, W = x_shape[2:]
    if H == 0 or W == 0:
        return NotImplemented  # no input cells to route to: the reference decides
    threads = enter()
    dx = np.empty(x_shape, dy.dtype)
    chunks = chunk_count(x_shape[0] * x_shape[1], threads)
    bad = _pool_bwd(ro(dy), ro(argmax), H * W, chunks, dx.reshape(-1))
    if bad:
        raise ValueError(f"argmax has {bad} entries outside [0, {H * W})")
    return dx
