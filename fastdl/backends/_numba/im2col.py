"""im2col / col2im, and the per-sample copies the convolution shares.

One sample at a time: copied into a zero-bordered padded buffer (C, Hp, Wp), then every
im2col row (oy, ox) is C*kh runs of kw consecutive cells of that buffer, so the copy has
no bounds tests.  Work inside ``prange`` goes to serial helpers on slices or flat arrays
indexed with unsigned offsets: there Numba cannot prove an index non-negative, and its
negative-index wraparound test keeps LLVM from vectorising (a plain zero-fill ran 3x
slower).  (uint64 mixed with int64 would give float64, hence the explicit casts.)
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..contract import conv_output_size
from ._common import chunk_count, enter, kernel, parallel, ro, serial

__all__ = ["im2col", "col2im"]


# The convolution's own im2col is (K, Q*OH) per sample: rows (c, ky, kx), and
# output row oy in columns oy*Q .. oy*Q + OW - 1, where Q = OW, except for
# stride 1, where Q is the padded width Wp: then every im2col row is ONE
# contiguous slice of the flattened padded sample (a long, vectorised copy).
# Columns OW .. Q-1 of each output row are padding, kept at exactly zero.

@serial
def _im2col_kq(xflat, C, Hp, Wp, kh, kw, stride, OH, OW, Q, col, off):
    """Flattened padded sample xflat (C*Hp*Wp, plus kw spare zeros when Q == Wp: the last
    contiguous slice overruns) -> col[:, off:off + OH*Q] (see above)."""
    ncol = col.shape[1]
    cf = col.reshape(col.size)
    for c in range(C):
        for ky in range(kh):
            for kx in range(kw):
                d0 = ((c * kh + ky) * kw + kx) * ncol + off
                s0 = (c * Hp + ky) * Wp + kx
                if Q == Wp and stride == 1:
                    du, su = np.uint64(d0), np.uint64(s0)
                    for q in range(OH * Q):
                        cf[du + np.uint64(q)] = xflat[su + np.uint64(q)]
                    for oy in range(OH):
                        for ox in range(OW, Q):
                            cf[np.uint64(d0 + oy * Q + ox)] = 0
                else:
                    for oy in range(OH):
                        su = np.uint64(s0 + oy * stride * Wp)
                        du = np.uint64(d0 + oy * Q)
                        for ox in range(OW):
                            cf[du + np.uint64(ox)] = xflat[su + np.uint64(ox * stride)]


@serial
def _col2im_kq(col, off, C, Hp, Wp, kh, kw, stride, OH, OW, xflat):
    """Add col[:, off:off + OH*OW] (rows (c, ky, kx), OW columns per output row) into
    the flattened padded sample xflat."""
    ncol = col.shape[1]
    cf = col.reshape(col.size)
    for c in range(C):
        for ky in range(kh):
            for kx in range(kw):
                s0 = ((c * kh + ky) * kw + kx) * ncol + off
                d0 = (c * Hp + ky) * Wp + kx
                for oy in range(OH):
                    du = np.uint64(d0 + oy * stride * Wp)
                    su = np.uint64(s0 + oy * OW)
                    for ox in range(OW):
                        xflat[du + np.uint64(ox * stride)] += cf[su + np.uint64(ox)]


# --------------------------------------------------------------------------- im2col / col2im

@serial
def _pad_sample(xs, C, H, W, pad, xp):
    """Copy one sample xs (C*H*W,) into the middle of the padded buffer xp (C*Hp*Wp,);
    the border of xp is left as it is (zero)."""
    Hp, Wp = H + 2 * pad, W + 2 * pad
    for c in range(C):
        for iy in range(H):
            s = np.uint64((c * H + iy) * W)
            d = np.uint64((c * Hp + iy + pad) * Wp + pad)
            for ix in range(W):
                xp[d + np.uint64(ix)] = xs[s + np.uint64(ix)]


@serial
def _crop_sample(xp, C, H, W, pad, xs):
    """xs (C*H*W,) = the middle of the padded buffer xp (C*Hp*Wp,)."""
    Hp, Wp = H + 2 * pad, W + 2 * pad
    for c in range(C):
        for iy in range(H):
            s = np.uint64((c * Hp + iy + pad) * Wp + pad)
            d = np.uint64((c * H + iy) * W)
            for ix in range(W):
                xs[d + np.uint64(ix)] = xp[s + np.uint64(ix)]


@serial
def _rows_from_padded(xp, C, Hp, Wp, kh, kw, stride, OH, OW, out):
    """out (OH*OW*C*kh*kw,) = the im2col rows of one padded sample xp (C*Hp*Wp,)."""
    o = np.uint64(0)
    one, two, three, four = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4)
    Wu = np.uint64(Wp)
    for oy in range(OH):
        for ox in range(OW):
            for c in range(C):
                s = np.uint64((c * Hp + oy * stride) * Wp + ox * stride)
                for _ in range(kh):
                    if kw == 3:  # the book's kernels, unrolled; loads before stores
                        a0, a1, a2 = xp[s], xp[s + one], xp[s + two]
                        out[o], out[o + one], out[o + two] = a0, a1, a2
                    elif kw == 5:
                        a0, a1, a2, a3, a4 = xp[s], xp[s + one], xp[s + two], xp[s + three], xp[s + four]
                        out[o], out[o + one], out[o + two], out[o + three], out[o + four] = a0, a1, a2, a3, a4
                    else:
                        for kx in range(kw):
                            out[o + np.uint64(kx)] = xp[s + np.uint64(kx)]
                    o += np.uint64(kw)
                    s += Wu


@serial
def _rows_into_padded(col, C, Hp, Wp, kh, kw, stride, OH, OW, xp):
    """Add the im2col rows col (OH*OW*C*kh*kw,) of one sample into the padded buffer xp.

    Each run of kw sums is loaded before it is stored (the arrays could alias as
    far as LLVM knows, so stores between loads would serialise them): about 2x faster."""
    o = np.uint64(0)
    one, two, three, four = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4)
    Wu = np.uint64(Wp)
    for oy in range(OH):
        for ox in range(OW):
            for c in range(C):
                s = np.uint64((c * Hp + oy * stride) * Wp + ox * stride)
                for _ in range(kh):
                    if kw == 3:  # the book's kernels, unrolled
                        a0, a1, a2 = xp[s] + col[o], xp[s + one] + col[o + one], xp[s + two] + col[o + two]
                        xp[s], xp[s + one], xp[s + two] = a0, a1, a2
                    elif kw == 5:
                        a0, a1, a2 = xp[s] + col[o], xp[s + one] + col[o + one], xp[s + two] + col[o + two]
                        a3, a4 = xp[s + three] + col[o + three], xp[s + four] + col[o + four]
                        xp[s], xp[s + one], xp[s + two], xp[s + three], xp[s + four] = a0, a1, a2, a3, a4
                    else:
                        for kx in range(kw):
                            xp[s + np.uint64(kx)] += col[o + np.uint64(kx)]
                    o += np.uint64(kw)
                    s += Wu


@parallel
def _im2col(x, kh, kw, stride, pad, OH, OW, chunks, out):
    """out (N*OH*OW*C*kh*kw,) = the im2col rows of x, sample by sample."""
    N, C, H, W = x.shape
    CHW, PK = C * H * W, OH * OW * C * kh * kw
    xf = x.reshape(N * CHW)
    Hp, Wp = H + 2 * pad, W + 2 * pad
    for t in prange(chunks):
        xp = np.zeros(C * Hp * Wp, x.dtype)
        for n in range(t * N // chunks, (t + 1) * N // chunks):
            _pad_sample(xf[n * CHW:(n + 1) * CHW], C, H, W, pad, xp)
            _rows_from_padded(xp, C, Hp, Wp, kh, kw, stride, OH, OW, out[n * PK:(n + 1) * PK])


@parallel
def _col2im(col, N, C, H, W, kh, kw, stride, pad, OH, OW, chunks, x):
    """x (N*C*H*W,) = the adjoint of im2col: each sample's rows added into a padded
    buffer (overlaps summed), whose middle is then copied out."""
    CHW, PK = C * H * W, OH * OW * C * kh * kw
    cf = col.reshape(col.size)
    Hp, Wp = H + 2 * pad, W + 2 * pad
    for t in prange(chunks):
        xp = np.empty(C * Hp * Wp, x.dtype)
        for n in range(t * N // chunks, (t + 1) * N // chunks):
            xp[:] = 0
            _rows_into_padded(cf[n * PK:(n + 1) * PK], C, Hp, Wp, kh, kw, stride, OH, OW, xp)
            _crop_sample(xp, C, H, W, pad, x[n * CHW:(n + 1) * CHW])


@kernel
def im2col(x, kh, kw, stride, pad):
    """(N, C, H, W) -> col (N*OH*OW, C*kh*kw); rows ordered (n, oy, ox), columns (c, ky, kx)."""
    threads = enter()
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, kh, stride, pad), conv_output_size(W, kw, stride, pad)
    out = np.empty((N * OH * OW, C * kh * kw), x.dtype)
    _im2col(ro(x), kh, kw, stride, pad, OH, OW, chunk_count(N, threads), out.reshape(-1))
    return out


@kernel
def col2im(col, x_shape, kh, kw, stride, pad):
    """Adjoint of :func:`im2col`: col (N*OH*OW, C*kh*kw) -> x (N, C, H, W), overlaps summed."""
    threads = enter()
    N, C, H, W = x_shape
    x = np.empty(x_shape, col.dtype)
    _col2im(ro(col), N, C, H, W, kh, kw, stride, pad,
            conv_output_size(H, kh, stride, pad), conv_output_size(W, kw, stride, pad), chunk_count(N, threads), x.reshape(-1))
    return x
