"""The Numba backend: the kernel contract of DESIGN.md, JIT-compiled and parallel.

Same functions and semantics as :mod:`fastdl.backends.numpy_ref` (the oracle),
for float32 and float64.  Every kernel is parallel over its outer dimension
with ``prange`` (samples, or (sample, channel) planes), each thread writing
its own slice of the output:

* convolution runs per sample (or per group of samples when images are
  small): im2col into a small contiguous ``(K, columns)`` buffer, then
  ``W (FN, K) @ col`` with the bias fused into the copy to the NCHW output.
  For stride 1 each im2col row is one contiguous slice of the padded image.
  Small images with more im2col columns than filters go the other way round,
  ``rows (G*P, K) @ W.T`` and a transposing copy, which OpenBLAS runs faster.
  The backward pass rebuilds the buffer from the saved input, accumulates
  ``dW`` per thread (reduced in a fixed order, so results repeat exactly for
  a given thread count), computes ``dx`` as ``W.T @ dy`` followed by col2im,
  and skips ``dx`` when it is not needed;
* im2col / col2im copy each sample into a zero-bordered padded buffer and
  move runs of kw cells from or to it, with no bounds tests;
* max pooling scans each window directly (a dedicated 2x2 / stride 2 / pad 0
  loop) and its backward pass zeroes each input plane and scatters ``dy``
  through ``argmax`` while the plane is in L1;
* softmax cross-entropy takes one row at a time, accumulating in float64.

Inside ``prange`` the work goes to serial helpers on slices or flat arrays
indexed with unsigned offsets: there Numba cannot prove an index
non-negative, and its negative-index wraparound test keeps LLVM from
vectorising (a plain zero-fill ran 3x slower).  Large outputs are
allocated by NumPy before the call (NumPy asks for huge pages, which halves
the page-fault cost of a fresh 10-50 MB array compared with Numba's allocator).

Matrix products call BLAS through SciPy (how Numba reaches BLAS); that BLAS
is kept at one thread so that only Numba's thread pool is busy inside a
parallel loop, and idle OpenMP threads sleep instead of spinning
(``OMP_WAIT_POLICY=PASSIVE``, set by :mod:`fastdl.backend` at import).  ``fastmath`` is limited
to flags that keep inf/NaN semantics.  Compiled code is cached on disk
(``cache=True``): next to this file when the package directory is writable,
otherwise in Numba's per-user cache directory; ``NUMBA_CACHE_DIR`` overrides
both; with no writable location at all the kernels compile in every process.
Inputs are passed to the compiled code as read-only views, so they cannot be
modified and each kernel compiles once per dtype.
"""
from __future__ import annotations

import os

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
    "relu_forward",
    "relu_backward",
    "adam_update",
    "set_num_threads",
    "backend_info",
]

# Reassociation and contraction let LLVM vectorise sums and fuse multiply-adds;
# 'nnan' / 'ninf' / 'afn' are left out so NaN and inf behave as in NumPy.
_FASTMATH = {"contract", "reassoc", "nsz"}


def _jit(parallel: bool, fastmath=_FASTMATH, **extra):
    """``@njit`` with an on-disk cache; without one if Numba finds no writable cache location."""
    opts = dict(cache=True, nogil=True, fastmath=fastmath, parallel=parallel, **extra)

    def wrap(fn):
        try:
            return njit(**opts)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(**dict(opts, cache=False))(fn)

    return wrap


_serial, _parallel = _jit(False), _jit(True)
# For kernels that must round exactly as NumPy does: no contraction to fused multiply-add, and
# IEEE division (x / 0 is inf or NaN, as in NumPy, instead of Python's ZeroDivisionError, whose
# per-element test also kept LLVM from vectorising).
_exact_serial = _jit(False, fastmath=False, error_model="numpy")
_exact_parallel = _jit(True, fastmath=False, error_model="numpy")


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

# Offsets are cast to unsigned where they cannot be negative: Numba then skips
# its negative-index wraparound test, which otherwise costs more than a copy.
# (uint64 mixed with int64 would give float64, hence the explicit casts.)

# The convolution's own im2col is (K, Q*OH) per sample: rows (c, ky, kx), and
# output row oy in columns oy*Q .. oy*Q + OW - 1, where Q = OW, except for
# stride 1, where Q is the padded width Wp: then every im2col row is ONE
# contiguous slice of the flattened padded sample (a long, vectorised copy).
# Columns OW .. Q-1 of each output row are padding, kept at exactly zero.

@_serial
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


@_serial
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

# One sample at a time: copied into a zero-bordered padded buffer (C, Hp, Wp),
# then every im2col row (oy, ox) is C*kh runs of kw consecutive cells of that
# buffer: no bounds tests in the copy.  Work inside ``prange`` goes to serial
# helpers on slices: there Numba cannot tell that an index is non-negative, and
# its wraparound test stops LLVM from vectorising (3-4x slower loops).

@_serial
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


@_serial
def _crop_sample(xp, C, H, W, pad, xs):
    """xs (C*H*W,) = the middle of the padded buffer xp (C*Hp*Wp,)."""
    Hp, Wp = H + 2 * pad, W + 2 * pad
    for c in range(C):
        for iy in range(H):
            s = np.uint64((c * Hp + iy + pad) * Wp + pad)
            d = np.uint64((c * H + iy) * W)
            for ix in range(W):
                xs[d + np.uint64(ix)] = xp[s + np.uint64(ix)]


@_serial
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


@_serial
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


@_parallel
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


@_parallel
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


def im2col(x, kh, kw, stride, pad):
    """(N, C, H, W) -> col (N*OH*OW, C*kh*kw); rows ordered (n, oy, ox), columns (c, ky, kx)."""
    threads = _enter()
    N, C, H, W = x.shape
    OH, OW = _out(H, kh, stride, pad), _out(W, kw, stride, pad)
    out = np.empty((N * OH * OW, C * kh * kw), x.dtype)
    _im2col(_ro(x), kh, kw, stride, pad, OH, OW, max(1, min(N, threads)), out.reshape(-1))
    return out


def col2im(col, x_shape, kh, kw, stride, pad):
    """Adjoint of :func:`im2col`: col (N*OH*OW, C*kh*kw) -> x (N, C, H, W), overlaps summed."""
    threads = _enter()
    N, C, H, W = x_shape
    x = np.empty(x_shape, col.dtype)
    _col2im(_ro(col), N, C, H, W, kh, kw, stride, pad,
            _out(H, kh, stride, pad), _out(W, kw, stride, pad), max(1, min(N, threads)), x.reshape(-1))
    return x


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


@_serial
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


@_parallel
def _conv_fwd_rows(x, W2T, b, kh, kw, stride, pad, OH, OW, G, chunks, y):
    N = x.shape[0]
    for t in prange(chunks):
        _conv_fwd_rows_range(x, W2T, b, kh, kw, stride, pad, OH, OW, G, t * N // chunks, (t + 1) * N // chunks, y)


@_parallel
def _conv_fwd(x, W2, b, kh, kw, stride, pad, OH, OW, Q, G, chunks, y):
    N = x.shape[0]
    for t in prange(chunks):
        _conv_fwd_range(x, W2, b, kh, kw, stride, pad, OH, OW, Q, G, t * N // chunks, (t + 1) * N // chunks, y)


@_serial
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


@_parallel
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
    x, W2 = _ro(x), _ro(W.reshape(FN, K))
    y = np.empty((N, FN, OH, OW), x.dtype)  # NumPy's allocator: huge pages, fewer page faults
    chunks = max(1, min(N, threads))
    if _rows_layout(K, FN, OH * OW):
        G = _group(K, OH * OW, x.itemsize)
        _conv_fwd_rows(x, _ro(np.ascontiguousarray(W2.T)), _ro(b), kh, kw, stride, pad, OH, OW, G, chunks, y)
    else:
        Q = _row_width(Wd, OW, stride, pad)
        _conv_fwd(x, W2, _ro(b), kh, kw, stride, pad, OH, OW, Q, _group(K, OH * Q, x.itemsize), chunks, y)
    return y, (x, W2, W.shape, stride, pad)


def conv2d_backward(dy, ctx, need_dx):
    """dy (N, FN, OH, OW) -> (dx (N, C, H, W) or None, dW (FN, C, kh, kw), db (FN,)).

    dx is ``W2.T @ dy`` per group of samples, added back into the image by
    col2im (measured faster here than convolving dy with the flipped filters,
    which needs an im2col of FN*kh*kw rows instead of C*kh*kw).
    """
    x, W2, w_shape, stride, pad = ctx
    FN, C, kh, kw = w_shape
    threads = _enter(uses_blas=True)
    N, _, H, Wd = x.shape
    chunks = max(1, min(N, threads))
    K = C * kh * kw
    G = _group(K, dy.shape[2] * dy.shape[3], dy.itemsize)
    W2T = _ro(np.ascontiguousarray(W2.T))
    dx = np.empty((N if need_dx else 0, C, H, Wd), dy.dtype)  # NumPy's allocator: fewer page faults
    k_major = K > FN
    dW, db = _conv_bwd(_ro(dy), x, W2, W2T, kh, kw, stride, pad, G, chunks, dx, k_major)
    # Per-thread partial sums, reduced in chunk order: repeatable for a given thread count.
    dW = dW.sum(axis=0)
    if k_major:
        dW = np.ascontiguousarray(dW.T)
    return (dx if need_dx else None), dW.reshape(w_shape), db.sum(axis=0).astype(dy.dtype)


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


@_parallel
def _pool_fwd(x, ph, pw, stride, pad, y, am):
    N, C = x.shape[:2]
    for nc in prange(N * C):
        n, c = nc // C, nc % C
        _pool_plane(x[n, c], ph, pw, stride, pad, y[n, c], am[n, c])


@_parallel
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


@_serial
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


@_parallel
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


def maxpool2d_forward(x, ph, pw, stride, pad):
    """x (N, C, H, W) -> (y (N, C, OH, OW), argmax (N, C, OH, OW) int64).

    Padding acts as -inf, ties go to the first maximum in row-major window
    order, the first NaN of a window wins; ``argmax`` is ``iy * W + ix``.
    """
    N, C, H, W = x.shape
    if H == 0 or W == 0:
        return NotImplemented  # windows made of padding only: the reference handles it
    _enter()
    OH, OW = _out(H, ph, stride, pad), _out(W, pw, stride, pad)
    # Outputs come from NumPy's allocator (huge pages for large arrays): fewer page faults.
    y = np.empty((N, C, OH, OW), x.dtype)
    am = np.empty((N, C, OH, OW), np.int64)
    if ph == pw == stride == 2 and pad == 0:
        _pool_fwd_2x2(_ro(x), OH, OW, y.reshape(-1), am.reshape(-1))
    else:
        _pool_fwd(_ro(x), ph, pw, stride, pad, y, am)
    return y, am


def maxpool2d_backward(dy, argmax, x_shape, ph, pw, stride, pad):
    """Scatter dy (N, C, OH, OW) to the argmax cells; returns dx of shape x_shape.

    Raises:
        ValueError: ``argmax`` points outside the input plane.
    """
    H, W = x_shape[2:]
    if H == 0 or W == 0:
        return NotImplemented  # no input cells to route to: the reference decides
    threads = _enter()
    dx = np.empty(x_shape, dy.dtype)
    chunks = max(1, min(x_shape[0] * x_shape[1], threads))
    bad = _pool_bwd(_ro(dy), _ro(argmax), H * W, chunks, dx.reshape(-1))
    if bad:
        raise ValueError(f"argmax has {bad} entries outside [0, {H * W})")
    return dx


# --------------------------------------------------------------------------- softmax cross-entropy

@_serial
def _softmax_row(row, e):
    """e = exp(row - max(row)) in the row's dtype (as the reference: float32
    exponentials are about twice as fast); returns (max + log(sum), 1 / sum)
    with the sum accumulated in float64.

    The max propagates NaN, so a row holding NaN gives NaN everywhere."""
    m = row[0]
    for v in row:
        m = v if (v > m) | (v != v) else m
    s = 0.0
    for k in range(row.shape[0]):
        ek = np.exp(row[k] - m)
        e[k] = ek
        s += ek
    return np.float64(m) + np.log(s), 1.0 / s


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
    N, K = logits.shape
    if K == 0:
        return NotImplemented  # no classes (the row kernels need one logit): the reference handles it
    _enter()
    kernel = _sce_labels if t.ndim == 1 else _sce_targets
    nll, d = kernel(_ro(logits), _ro(t))
    return (float(nll.sum() / N) if N else float("nan")), d


# --------------------------------------------------------------------------- elementwise kernels

def _elementwise_chunks(n: int, grain: int = 65536) -> int:
    """Threads for an elementwise pass over n elements: one per ``grain`` elements at most
    (below that, waking the pool costs more than it saves), capped by the thread count."""
    return max(1, min(_enter(), n // grain))


# --------------------------------------------------------------------------- optimizer

@_exact_serial
def _adam_range(p, g, m, v, lr, c1, c2, eps):
    """One Adam step on flat slices, each operation rounded as NumPy rounds it."""
    for i in range(p.size):
        j = np.uint64(i)
        gi, m0, v0 = g[j], m[j], v[j]
        mi = m0 + c1 * (gi - m0)
        vi = v0 + c2 * (gi * gi - v0)
        m[j] = mi
        v[j] = vi
        p[j] = p[j] - lr * mi / (np.sqrt(vi) + eps)


@_exact_parallel
def _adam(p, g, m, v, lr, c1, c2, eps, chunks):
    n = p.size
    for t in prange(chunks):
        lo, hi = t * n // chunks, (t + 1) * n // chunks
        _adam_range(p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], lr, c1, c2, eps)


def adam_update(p, g, m, v, lr, beta1, beta2, eps):
    """One Adam step in place on p, m, v (C-contiguous, one dtype); bit for bit the reference's.

    The hyperparameters are rounded to the arrays' dtype first, as NumPy rounds
    a Python float that meets a float32 array.  Adam does ~4x the work per element
    of ReLU, so threads pay off from 16K elements."""
    t = p.dtype.type
    _adam(p.reshape(-1), _ro(g).reshape(-1), m.reshape(-1), v.reshape(-1),
          t(lr), t(1 - beta1), t(1 - beta2), t(eps), _elementwise_chunks(p.size, 16384))


# --------------------------------------------------------------------------- ReLU

@_exact_serial
def _relu_fwd_range(x, y, mask):
    for i in range(x.size):
        j = np.uint64(i)
        v = x[j]
        pos = v > 0
        mask[j] = pos
        y[j] = v if (pos or v != v) else 0.0  # NaN kept as it is; -0 -> +0, as np.maximum(x, 0)


@_exact_parallel
def _relu_fwd(x, y, mask, chunks):
    n = x.size
    for t in prange(chunks):
        lo, hi = t * n // chunks, (t + 1) * n // chunks
        _relu_fwd_range(x[lo:hi], y[lo:hi], mask[lo:hi])


@_exact_serial
def _relu_bwd_range(d, mask, dx, one, zero):
    for i in range(d.size):
        j = np.uint64(i)
        dx[j] = d[j] * (one if mask[j] else zero)  # a multiply by 1 or 0, as NumPy's dout * mask


@_exact_parallel
def _relu_bwd(d, mask, dx, one, zero, chunks):
    n = d.size
    for t in prange(chunks):
        lo, hi = t * n // chunks, (t + 1) * n // chunks
        _relu_bwd_range(d[lo:hi], mask[lo:hi], dx[lo:hi], one, zero)




def relu_forward(x):
    """x (any shape) -> (max(x, 0), x > 0) in one pass; bit for bit the reference's."""
    y = np.empty_like(x)
    mask = np.empty(x.shape, np.bool_)
    _relu_fwd(_ro(x).reshape(-1), y.reshape(-1), mask.reshape(-1), _elementwise_chunks(x.size))
    return y, mask


def relu_backward(dout, mask):
    """dout, bool mask -> dout * mask in one pass; bit for bit the reference's."""
    dx = np.empty_like(dout)
    t = dout.dtype.type
    _relu_bwd(_ro(dout).reshape(-1), _ro(mask).reshape(-1), dx.reshape(-1), t(1), t(0),
              _elementwise_chunks(dout.size))
    return dx
