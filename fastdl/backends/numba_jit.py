"""The Numba backend: the kernel contract of DESIGN.md, JIT-compiled and parallel.

Same functions and semantics as :mod:`fastdl.backends.numpy_ref` (the oracle),
for float32 and float64.  Every kernel is parallel over its outer dimension
with ``prange`` (samples, or (sample, channel) planes), each thread writing
its own slice of the output:

* convolution runs per sample (or per group of samples when images are
  small): im2col into a small contiguous ``(K, columns)`` buffer, then
  ``W (FN, K) @ col`` with the bias fused into the copy to the NCHW output.
  For stride 1 each im2col row is one contiguous slice of the padded image.
  The backward pass rebuilds the buffer from the saved input, accumulates
  ``dW`` per thread (reduced in a fixed order, so results repeat exactly for
  a given thread count), computes ``dx`` (stride 1) as the convolution of
  ``dy`` with the flipped filters, and skips ``dx`` when it is not needed;
* max pooling scans each window directly (a dedicated 2x2 / stride 2 / pad 0
  loop) and its backward pass scatters ``dy`` through ``argmax``;
* softmax cross-entropy takes one row at a time, accumulating in float64.

Matrix products call BLAS through SciPy (how Numba reaches BLAS); that BLAS
is kept at one thread so that only Numba's thread pool is busy inside a
parallel loop, and idle OpenMP threads sleep instead of spinning
(``OMP_WAIT_POLICY=PASSIVE`` unless already set).  ``fastmath`` is limited
to flags that keep inf/NaN semantics.  Compiled code is cached on disk
(``cache=True``): next to this file when the package directory is writable,
otherwise in Numba's per-user cache directory; ``NUMBA_CACHE_DIR`` overrides
both; with no writable location at all the kernels compile in every process.
Inputs are passed to the compiled code as read-only views, so they cannot be
modified and each kernel compiles once per dtype.
"""
from __future__ import annotations

import os

# Idle OpenMP threads spin-wait by default and steal a core from whatever runs
# next (the next kernel, or the NumPy code between kernels): measured here as
# a 3x slowdown of single-threaded work.  Make them sleep instead.  libgomp
# reads this when it is loaded, which Numba does at its first parallel call.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg.cython_blas  # noqa: E402,F401 - the BLAS that np.dot calls inside @njit
from numba import njit, prange  # noqa: E402
from threadpoolctl import ThreadpoolController  # noqa: E402

__all__ = [
    "im2col",
    "col2im",
    "conv2d_forward",
    "conv2d_backward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "softmax_cross_entropy",
    "set_num_threads",
    "backend_info",
]

# Reassociation and contraction let LLVM vectorise sums and fuse multiply-adds;
# 'nnan' / 'ninf' / 'afn' are left out so NaN and inf behave as in NumPy.
_FASTMATH = {"contract", "reassoc", "nsz"}


def _jit(parallel: bool):
    """``@njit`` with an on-disk cache; without one if Numba finds no writable cache location."""
    opts = dict(cache=True, nogil=True, fastmath=_FASTMATH, parallel=parallel)

    def wrap(fn):
        try:
            return njit(**opts)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(**dict(opts, cache=False))(fn)

    return wrap


_serial, _parallel = _jit(False), _jit(True)


# --------------------------------------------------------------------------- threads

def _scipy_blas():
    """threadpoolctl controllers of the BLAS that SciPy (hence Numba's np.dot) uses.

    A SciPy wheel ships its own BLAS under ``scipy*/``; otherwise every BLAS but
    NumPy's own is taken to be SciPy's.
    """
    import scipy

    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    scipy_dir = os.path.dirname(scipy.__file__)
    numpy_dir = os.path.dirname(np.__file__)
    own = [lib for lib in libs if lib.filepath.startswith(scipy_dir)]
    return own or [lib for lib in libs if not lib.filepath.startswith(numpy_dir)]


_BLAS = _scipy_blas()
_threads = numba.config.NUMBA_NUM_THREADS


def set_num_threads(n: int) -> None:
    """Run the parallel kernels on ``n`` threads (at most ``NUMBA_NUM_THREADS``)."""
    global _threads
    _threads = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(_threads)


def _enter(uses_blas: bool = False) -> int:
    """Apply the thread count to the calling thread (Numba's setting is per thread);
    keep SciPy's BLAS single-threaded for kernels that call it inside ``prange``."""
    if numba.get_num_threads() != _threads:
        numba.set_num_threads(_threads)
    if uses_blas:
        for lib in _BLAS:
            if lib.num_threads != 1:
                lib.set_num_threads(1)
    return _threads


def backend_info() -> str:
    """Numba version, threading layer, thread count and cache directory."""
    _enter()
    cache = _im2col.stats.cache_path or "off (no writable location)"
    return (
        f"Numba {numba.__version__}, threading layer {numba.threading_layer()}, "
        f"{_threads} threads, cache {cache}"
    )


def _ro(a: np.ndarray) -> np.ndarray:
    """A read-only view: the kernels cannot write to inputs and compile once per dtype."""
    v = a.view()
    v.flags.writeable = False
    return v


def _out(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


# --------------------------------------------------------------------------- per-sample helpers

@_serial
def _pad_into(x, ph, pw, xp):
    """Copy x (C, H, W) into the middle of xp (C, H + 2*ph, W + 2*pw), zero border."""
    C, H, W = x.shape
    Hp, Wp = xp.shape[1], xp.shape[2]
    for c in range(C):
        for iy in range(Hp):
            row = xp[c, iy]
            if iy < ph or iy >= ph + H:
                row[:] = 0
                continue
            src = x[c, iy - ph]
            for ix in range(pw):
                row[ix] = 0
            for ix in range(W):
                row[pw + ix] = src[ix]
            for ix in range(pw + W, Wp):
                row[ix] = 0


@_serial
def _crop_from(xp, pad, x):
    """x (C, H, W) = the middle of xp (C, H + 2*pad, W + 2*pad)."""
    C, H, W = x.shape
    for c in range(C):
        for iy in range(H):
            src, dst = xp[c, iy + pad], x[c, iy]
            for ix in range(W):
                dst[ix] = src[pad + ix]


# The convolution's own im2col is (K, Q*OH) per sample: rows (c, ky, kx), and
# output row oy in columns oy*Q .. oy*Q + OW - 1, where Q = OW, except for
# stride 1, where Q is the padded width Wp: then every im2col row is ONE
# contiguous slice of the flattened padded sample (a long, vectorised copy).
# Columns OW .. Q-1 of each output row are padding, kept at exactly zero.

@_serial
def _im2col_kq(xflat, C, Hp, Wp, kh, kw, stride, OH, OW, Q, col, off):
    """Flattened padded sample xflat (C*Hp*Wp + kw) -> col[:, off:off + OH*Q] (see above)."""
    for c in range(C):
        for ky in range(kh):
            for kx in range(kw):
                dst = col[(c * kh + ky) * kw + kx]
                src0 = (c * Hp + ky) * Wp + kx
                if Q == Wp and stride == 1:
                    for q in range(OH * Q):
                        dst[off + q] = xflat[src0 + q]
                    for oy in range(OH):
                        for ox in range(OW, Q):
                            dst[off + oy * Q + ox] = 0
                else:
                    for oy in range(OH):
                        s0, base = src0 + oy * stride * Wp, off + oy * Q
                        for ox in range(OW):
                            dst[base + ox] = xflat[s0 + ox * stride]


@_serial
def _col2im_kq(col, off, C, Hp, Wp, kh, kw, stride, OH, OW, Q, xflat):
    """Add col[:, off:off + OH*Q] into the flattened padded sample (padding columns must be 0)."""
    for c in range(C):
        for ky in range(kh):
            for kx in range(kw):
                src = col[(c * kh + ky) * kw + kx]
                dst0 = (c * Hp + ky) * Wp + kx
                if Q == Wp and stride == 1:
                    for q in range(OH * Q):
                        xflat[dst0 + q] += src[off + q]
                else:
                    for oy in range(OH):
                        d0, base = dst0 + oy * stride * Wp, off + oy * Q
                        for ox in range(OW):
                            xflat[d0 + ox * stride] += src[base + ox]


@_serial
def _im2col_pk(xp, kh, kw, stride, OH, OW, out):
    """Padded sample xp (C, Hp, Wp) -> out (OH*OW, C*kh*kw): rows (oy, ox), columns (c, ky, kx)."""
    C = xp.shape[0]
    for oy in range(OH):
        for ox in range(OW):
            dst = out[oy * OW + ox]
            for c in range(C):
                for ky in range(kh):
                    src = xp[c, oy * stride + ky]
                    r = (c * kh + ky) * kw
                    x0 = ox * stride
                    for kx in range(kw):
                        dst[r + kx] = src[x0 + kx]


@_serial
def _col2im_pk(col, kh, kw, stride, OH, OW, xp):
    """Add col (OH*OW, C*kh*kw) into the padded sample xp (C, Hp, Wp)."""
    C = xp.shape[0]
    for oy in range(OH):
        for ox in range(OW):
            src = col[oy * OW + ox]
            for c in range(C):
                for ky in range(kh):
                    dst = xp[c, oy * stride + ky]
                    r = (c * kh + ky) * kw
                    x0 = ox * stride
                    for kx in range(kw):
                        dst[x0 + kx] += src[r + kx]


# --------------------------------------------------------------------------- im2col / col2im

@_parallel
def _im2col(x, kh, kw, stride, pad, OH, OW):
    N, C, H, W = x.shape
    K, P = C * kh * kw, OH * OW
    out = np.empty((N * P, K), x.dtype)
    for n in prange(N):
        xp = np.empty((C, H + 2 * pad, W + 2 * pad), x.dtype)
        _pad_into(x[n], pad, pad, xp)
        _im2col_pk(xp, kh, kw, stride, OH, OW, out[n * P:(n + 1) * P])
    return out


@_parallel
def _col2im(col, N, C, H, W, kh, kw, stride, pad, OH, OW):
    P = OH * OW
    x = np.empty((N, C, H, W), col.dtype)
    for n in prange(N):
        xp = np.zeros((C, H + 2 * pad, W + 2 * pad), col.dtype)
        _col2im_pk(col[n * P:(n + 1) * P], kh, kw, stride, OH, OW, xp)
        _crop_from(xp, pad, x[n])
    return x


def im2col(x, kh, kw, stride, pad):
    """(N, C, H, W) -> col (N*OH*OW, C*kh*kw); rows ordered (n, oy, ox), columns (c, ky, kx)."""
    _enter()
    H, W = x.shape[2:]
    return _im2col(_ro(x), kh, kw, stride, pad, _out(H, kh, stride, pad), _out(W, kw, stride, pad))


def col2im(col, x_shape, kh, kw, stride, pad):
    """Adjoint of :func:`im2col`: col (N*OH*OW, C*kh*kw) -> x (N, C, H, W), overlaps summed."""
    _enter()
    N, C, H, W = x_shape
    return _col2im(_ro(col), N, C, H, W, kh, kw, stride, pad,
                   _out(H, kh, stride, pad), _out(W, kw, stride, pad))


# --------------------------------------------------------------------------- convolution

# Small images (OH*Q < _MIN_COLS) are processed in groups of G samples: their
# im2col columns sit side by side in one (K, G*OH*Q) buffer of at most about
# _COL_BYTES, so that one GEMM covers the group.  Larger images go one at a time.
_MIN_COLS = 256
_COL_BYTES = 1 << 20


def _group(K: int, P: int, itemsize: int) -> int:
    if P >= _MIN_COLS:
        return 1
    return max(1, min(-(-_MIN_COLS * 4 // P), _COL_BYTES // max(1, K * P * itemsize)))


@_serial
def _conv_fwd_range(x, W2, b, kh, kw, stride, ph, pw, OH, OW, Q, G, lo, hi, y):
    """y[lo:hi] = conv(x[lo:hi]) + b (padding ph rows, pw columns), G samples per GEMM."""
    C, H, W = x.shape[1:]
    Hp, Wp = H + 2 * ph, W + 2 * pw
    FN, K = W2.shape
    L = OH * Q
    xflat = np.zeros(C * Hp * Wp + kw, x.dtype)  # kw spare zeros: the last stride-1 slice overruns
    xp = xflat[:C * Hp * Wp].reshape((C, Hp, Wp))
    col = np.empty((K, G * L), x.dtype)
    out = np.empty((FN, G * L), x.dtype)
    for n0 in range(lo, hi, G):
        g = min(G, hi - n0)
        if g * L != col.shape[1]:  # the last, smaller group
            col = np.empty((K, g * L), x.dtype)
            out = np.empty((FN, g * L), x.dtype)
        for j in range(g):
            _pad_into(x[n0 + j], ph, pw, xp)
            _im2col_kq(xflat, C, Hp, Wp, kh, kw, stride, OH, OW, Q, col, j * L)
        np.dot(W2, col, out)
        for j in range(g):
            for f in range(FN):
                bf, src, dst = b[f], out[f], y[n0 + j, f]
                for oy in range(OH):
                    row = dst[oy]
                    base = j * L + oy * Q
                    for ox in range(OW):
                        row[ox] = src[base + ox] + bf


@_parallel
def _conv_fwd(x, W2, b, kh, kw, stride, ph, pw, OH, OW, Q, G, chunks):
    N = x.shape[0]
    y = np.empty((N, W2.shape[0], OH, OW), x.dtype)
    for t in prange(chunks):
        _conv_fwd_range(x, W2, b, kh, kw, stride, ph, pw, OH, OW, Q, G, t * N // chunks, (t + 1) * N // chunks, y)
    return y


@_serial
def _conv_bwd_range(dy, x, W2, W2T, kh, kw, stride, pad, Q, G, lo, hi, dx, dW, db):
    """Add the gradients of samples lo..hi-1 into dW (FN, K) and db (FN,) float64;
    write their dx when dx is not empty.  G samples per GEMM."""
    C, H, W = x.shape[1:]
    Hp, Wp = H + 2 * pad, W + 2 * pad
    FN, K = W2.shape
    OH, OW = dy.shape[2], dy.shape[3]
    L = OH * Q
    xflat = np.zeros(C * Hp * Wp + kw, dy.dtype)
    xp = xflat[:C * Hp * Wp].reshape((C, Hp, Wp))
    col = np.empty((K, G * L), dy.dtype)
    dcol = np.empty((K, G * L), dy.dtype)
    dyg = np.zeros((FN, G * L), dy.dtype)  # padding columns stay 0
    tmp = np.empty((FN, K), dy.dtype)
    for n0 in range(lo, hi, G):
        g = min(G, hi - n0)
        if g * L != col.shape[1]:  # the last, smaller group
            col = np.empty((K, g * L), dy.dtype)
            dcol = np.empty((K, g * L), dy.dtype)
            dyg = np.zeros((FN, g * L), dy.dtype)
        for j in range(g):
            for f in range(FN):
                src, dst = dy[n0 + j, f], dyg[f]
                s = 0.0
                for oy in range(OH):
                    row = src[oy]
                    base = j * L + oy * Q
                    for ox in range(OW):
                        v = row[ox]
                        dst[base + ox] = v
                        s += v
                db[f] += s
            _pad_into(x[n0 + j], pad, pad, xp)
            _im2col_kq(xflat, C, Hp, Wp, kh, kw, stride, OH, OW, Q, col, j * L)
        np.dot(dyg, col.T, tmp)
        dW += tmp
        if dx.shape[0]:
            np.dot(W2T, dyg, dcol)
            if Q != OW:  # exact zeros in the padding columns, even for non-finite W
                for r in range(K):
                    row = dcol[r]
                    for base in range(0, g * L, Q):
                        for ox in range(OW, Q):
                            row[base + ox] = 0
            for j in range(g):
                xflat[:] = 0
                _col2im_kq(dcol, j * L, C, Hp, Wp, kh, kw, stride, OH, OW, Q, xflat)
                _crop_from(xp, pad, dx[n0 + j])


@_parallel
def _conv_bwd(dy, x, W2, W2T, kh, kw, stride, pad, need_dx, Q, G, chunks):
    N, C, H, Wd = x.shape
    FN, K = W2.shape
    dW_parts = np.zeros((chunks, FN, K), dy.dtype)
    db_parts = np.zeros((chunks, FN), np.float64)
    dx = np.empty((N if need_dx else 0, C, H, Wd), dy.dtype)
    for t in prange(chunks):
        _conv_bwd_range(dy, x, W2, W2T, kh, kw, stride, pad, Q, G, t * N // chunks, (t + 1) * N // chunks,
                        dx, dW_parts[t], db_parts[t])
    return dx, dW_parts, db_parts


def _row_width(Wd: int, OW: int, stride: int, pad: int) -> int:
    """Q: the padded width for stride 1 when at most 1/6 of the columns are padding
    (contiguous im2col rows), else OW."""
    Wp = Wd + 2 * pad
    return Wp if stride == 1 and 6 * (Wp - OW) <= Wp else OW


def conv2d_forward(x, W, b, stride, pad):
    """x (N, C, H, W), W (FN, C, kh, kw), b (FN,) -> y (N, FN, OH, OW) and a context for backward.

    The context keeps a reference to ``x`` (not a copy): do not modify ``x``
    in place before the backward pass.
    """
    FN, C, kh, kw = W.shape
    if FN == 0 or C == 0:
        return NotImplemented  # degenerate (no filters or no channels): the reference handles it
    threads = _enter(uses_blas=True)
    N, _, H, Wd = x.shape
    OH, OW = _out(H, kh, stride, pad), _out(Wd, kw, stride, pad)
    K = C * kh * kw
    Q = _row_width(Wd, OW, stride, pad)
    G = _group(K, OH * Q, x.itemsize)
    x, W2 = _ro(x), _ro(W.reshape(FN, K))
    y = _conv_fwd(x, W2, _ro(b), kh, kw, stride, pad, pad, OH, OW, Q, G, max(1, min(N, threads)))
    return y, (x, W2, W.shape, stride, pad)


def conv2d_backward(dy, ctx, need_dx):
    """dy (N, FN, OH, OW) -> (dx (N, C, H, W) or None, dW (FN, C, kh, kw), db (FN,)).

    For stride 1 (and pad < kernel), dx is the convolution of dy, padded by
    ``k - 1 - pad``, with the flipped, transposed filters: it runs through the
    forward kernel (one large GEMM per sample) instead of GEMM + col2im.
    """
    x, W2, w_shape, stride, pad = ctx
    FN, C, kh, kw = w_shape
    threads = _enter(uses_blas=True)
    N = x.shape[0]
    chunks = max(1, min(N, threads))
    OH, OW = dy.shape[2:]
    dy = _ro(dy)
    dx_by_conv = need_dx and stride == 1 and pad < min(kh, kw)
    Q = _row_width(x.shape[3], OW, stride, pad)
    G = _group(C * kh * kw, OH * Q, dy.itemsize)
    W2T = _ro(np.ascontiguousarray(W2.T))
    dx, dW, db = _conv_bwd(dy, x, W2, W2T, kh, kw, stride, pad, need_dx and not dx_by_conv, Q, G, chunks)
    if dx_by_conv:
        ph, pw = kh - 1 - pad, kw - 1 - pad
        Wf = np.ascontiguousarray(W2.reshape(w_shape)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        H, Wd = x.shape[2:]
        Qx = _row_width(OW, Wd, 1, pw)
        Gx = _group(FN * kh * kw, H * Qx, dy.itemsize)
        dx = _conv_fwd(dy, _ro(Wf.reshape(C, FN * kh * kw)), _ro(np.zeros(C, dy.dtype)), kh, kw, 1, ph, pw,
                       H, Wd, Qx, Gx, chunks)
    # Per-thread partial sums, reduced in chunk order: repeatable for a given thread count.
    return (dx if need_dx else None), dW.sum(axis=0).reshape(w_shape), db.sum(axis=0).astype(dy.dtype)


# --------------------------------------------------------------------------- max pooling

# Windows are scanned backwards with ``v >= best or v is NaN`` as branch-free
# selects: the earliest maximum wins ties, and the earliest NaN wins over all.

@_serial
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


@_serial
def _pool_rows_2x2(r0, r1, base, W, yr, ar):
    """One output row of the 2x2 / stride 2 / pad 0 pooling from input rows r0, r1."""
    for ox in range(yr.shape[0]):
        best = r1[2 * ox + 1]
        k = W + 1
        v = r1[2 * ox]
        m = (v >= best) | (v != v)
        best = v if m else best
        k = W if m else k
        v = r0[2 * ox + 1]
        m = (v >= best) | (v != v)
        best = v if m else best
        k = 1 if m else k
        v = r0[2 * ox]
        m = (v >= best) | (v != v)
        best = v if m else best
        k = 0 if m else k
        yr[ox] = best
        ar[ox] = base + 2 * ox + k


@_parallel
def _pool_fwd(x, ph, pw, stride, pad, OH, OW):
    N, C, H, W = x.shape
    y = np.empty((N, C, OH, OW), x.dtype)
    am = np.empty((N, C, OH, OW), np.int64)
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        _pool_plane(x[n, c], ph, pw, stride, pad, y[n, c], am[n, c])
    return y, am


@_parallel
def _pool_fwd_2x2(x, OH, OW):
    N, C, H, W = x.shape
    y = np.empty((N, C, OH, OW), x.dtype)
    am = np.empty((N, C, OH, OW), np.int64)
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        xp, yp, ap = x[n, c], y[n, c], am[n, c]
        for oy in range(OH):
            _pool_rows_2x2(xp[2 * oy], xp[2 * oy + 1], 2 * oy * W, W, yp[oy], ap[oy])
    return y, am


@_parallel
def _pool_bwd(dy, am, HW):
    N, C, OH, OW = dy.shape
    NC, OHW = N * C, OH * OW
    g, a = dy.reshape(NC * OHW), am.reshape(NC * OHW)
    dx = np.empty(NC * HW, dy.dtype)
    bad = 0
    for nc in prange(NC):
        base = nc * HW
        for i in range(base, base + HW):
            dx[i] = 0
        for o in range(nc * OHW, (nc + 1) * OHW):
            i = a[o]
            if 0 <= i < HW:
                dx[base + i] += g[o]
            else:
                bad += 1
    return dx, bad


def maxpool2d_forward(x, ph, pw, stride, pad):
    """x (N, C, H, W) -> (y (N, C, OH, OW), argmax (N, C, OH, OW) int64).

    Padding acts as -inf, ties go to the first maximum in row-major window
    order, the first NaN of a window wins; ``argmax`` is ``iy * W + ix``.
    """
    H, W = x.shape[2:]
    if H == 0 or W == 0:
        return NotImplemented  # windows made of padding only: the reference handles it
    _enter()
    OH, OW = _out(H, ph, stride, pad), _out(W, pw, stride, pad)
    if ph == pw == stride == 2 and pad == 0:
        return _pool_fwd_2x2(_ro(x), OH, OW)
    return _pool_fwd(_ro(x), ph, pw, stride, pad, OH, OW)


def maxpool2d_backward(dy, argmax, x_shape, ph, pw, stride, pad):
    """Scatter dy (N, C, OH, OW) to the argmax cells; returns dx of shape x_shape.

    Raises:
        ValueError: ``argmax`` points outside the input plane.
    """
    if x_shape[2] == 0 or x_shape[3] == 0:
        return NotImplemented  # no input cells to route to: the reference decides
    _enter()
    HW = x_shape[2] * x_shape[3]
    dx, bad = _pool_bwd(_ro(dy), _ro(argmax), HW)
    if bad:
        raise ValueError(f"argmax has {bad} entries outside [0, {HW})")
    return dx.reshape(x_shape)


# --------------------------------------------------------------------------- softmax cross-entropy

@_serial
def _softmax_row(row, e):
    """e = exp(row - max(row)) in e's dtype; returns (max + log(sum), 1 / sum) in float64.

    The max propagates NaN, so a row holding NaN gives NaN everywhere."""
    m = -np.inf
    for v in row:
        m = v if (v > m) | (v != v) else m
    m = np.float64(m)
    s = 0.0
    for k in range(row.shape[0]):
        ek = np.exp(np.float64(row[k]) - m)
        e[k] = ek
        s += ek
    return m + np.log(s), 1.0 / s


@_parallel
def _sce_labels(z, t):
    N, K = z.shape
    d = np.empty((N, K), z.dtype)
    nll = np.empty(N, np.float64)
    inv_n = 1.0 / max(N, 1)
    for i in prange(N):
        row, di, ti = z[i], d[i], t[i]
        shift, inv_s = _softmax_row(row, di)
        nll[i] = shift - row[ti]
        scale = inv_s * inv_n
        for k in range(K):
            di[k] *= scale
        di[ti] = (np.exp(np.float64(row[ti]) - shift) - 1.0) * inv_n
    return nll, d


@_parallel
def _sce_targets(z, t):
    N, K = z.shape
    d = np.empty((N, K), z.dtype)
    nll = np.empty(N, np.float64)
    inv_n = 1.0 / max(N, 1)
    for i in prange(N):
        row, di, ti = z[i], d[i], t[i]
        shift, inv_s = _softmax_row(row, di)
        acc = 0.0
        for k in range(K):
            tk = np.float64(ti[k])
            if tk != 0:  # 0 * log(0) counts as 0
                acc += tk * (row[k] - shift)
            di[k] = (di[k] * inv_s - tk) * inv_n
        nll[i] = -acc
    return nll, d


def softmax_cross_entropy(logits, t):
    """Mean cross-entropy of softmax(logits) against t, and its gradient.

    logits (N, K); t int64 (N,) class indices or (N, K) target distribution.
    Returns ``(loss: float, dlogits (N, K))`` with ``dlogits = (softmax - t) / N``.
    """
    _enter()
    kernel = _sce_labels if t.ndim == 1 else _sce_targets
    nll, d = kernel(_ro(logits), _ro(t))
    N = logits.shape[0]
    return (float(nll.sum() / N) if N else float("nan")), d
