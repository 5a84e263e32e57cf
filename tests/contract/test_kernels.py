"""Every kernel of the contract, on every available backend, against the reference and naive loops.

One test body per kernel; the ``backend`` fixture (conftest.py) runs it once
per available backend.  Each kernel is called through :mod:`fastdl.ops` and
compared with the NumPy reference backend and with the obvious loops of
``tests/naive.py`` on an edge-shape matrix: odd sizes, stride 1/2/3, padding
up to kernel/2, 1x1 spatial, kernel equal to (or larger than) the input,
non-square kernels and inputs, an empty batch, 1..64 channels,
non-contiguous and read-only inputs, float32 and float64.

Tolerances: float64 to 1e-10 and float32 to 1e-4 (against a float64
evaluation), relative to the largest magnitude of the answer.  Max pooling and im2col are exact.  Every
call also checks that its inputs are unchanged and that a second call gives
bit-identical results.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl import ops

import naive

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-4, np.float64: 1e-10}


# --------------------------------------------------------------------------- helpers

def _layout(a: np.ndarray, how: str) -> np.ndarray:
    """The same values as ``a``, stored C-contiguous, strided (non-contiguous) or read-only."""
    if how == "strided":
        big = np.zeros(a.shape + (2,), dtype=a.dtype)
        big[..., 0] = a
        out = big[..., 0]
        assert not out.flags.c_contiguous or a.size <= 1
        return out
    out = a.copy()
    if how == "readonly":
        out.flags.writeable = False
    return out


def _close(got, want, dtype, what=""):
    """got and want agree to the dtype's tolerance, relative to max |want|."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    finite = np.abs(want[np.isfinite(want)])
    scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=what)


def _run(fn, *inputs):
    """Call fn twice; check inputs untouched and both results bit-identical; return the first."""
    before = [np.array(a, copy=True) for a in inputs]
    first = fn(*inputs)
    for a, b in zip(inputs, before):
        np.testing.assert_array_equal(a, b, err_msg="input modified")
    second = fn(*inputs)
    flat1 = first if isinstance(first, tuple) else (first,)
    flat2 = second if isinstance(second, tuple) else (second,)
    for r1, r2 in zip(flat1, flat2):
        if isinstance(r1, np.ndarray):
            np.testing.assert_array_equal(r1, r2, err_msg="not repeatable")
        elif isinstance(r1, float):
            assert r1 == r2 or (np.isnan(r1) and np.isnan(r2)), "not repeatable"
    return first


def _reference(fn, *args):
    with fastdl.use_backend("numpy"):
        return fn(*args)


# --------------------------------------------------------------------------- convolution family

# (N, C, H, W, FN, kh, kw, stride, pad, layout)
CONV_CASES = [
    (2, 3, 7, 5, 4, 3, 3, 1, 0, "contiguous"),    # odd, non-square input
    (2, 3, 7, 5, 4, 3, 3, 2, 1, "strided"),       # stride 2, pad 1
    (1, 2, 9, 8, 3, 3, 2, 3, 1, "readonly"),      # stride 3, non-square kernel
    (3, 1, 1, 1, 2, 1, 1, 1, 0, "contiguous"),    # 1x1 spatial and kernel
    (2, 4, 5, 5, 3, 5, 5, 1, 0, "readonly"),      # kernel equal to the input
    (2, 2, 5, 6, 3, 5, 4, 2, 2, "strided"),       # pad = kernel/2, stride 2
    (1, 3, 3, 3, 2, 4, 4, 1, 1, "contiguous"),    # kernel larger than the unpadded input
    (0, 3, 6, 6, 2, 3, 3, 1, 1, "contiguous"),    # empty batch
    (2, 64, 5, 4, 5, 3, 3, 1, 1, "strided"),      # 64 input channels
    (2, 5, 4, 9, 64, 1, 3, 2, 0, "readonly"),     # 64 filters, 1x3 kernel
    (5, 8, 10, 10, 6, 3, 3, 1, 1, "contiguous"),  # more samples than threads
    (3, 2, 6, 22, 4, 3, 3, 1, 1, "contiguous"),   # wide rows (the stride-1 fast path of fast backends)
    (2, 3, 16, 18, 4, 3, 3, 1, 1, "strided"),     # >= 256 output cells: numba's per-sample (K, P) path
    (2, 1, 17, 18, 12, 3, 3, 1, 1, "contiguous"), # ... with more filters than im2col columns
    (2, 2, 4, 16, 3, 3, 3, 1, 1, "strided"),      # rows of 16 windows: whole vectors in col2im
    (2, 3, 5, 33, 2, 2, 2, 1, 1, "contiguous"),   # 34 windows a row, 12 im2col columns, even kernel
    (2, 0, 4, 4, 3, 3, 3, 1, 1, "contiguous"),    # no input channels
    (2, 3, 4, 4, 0, 3, 3, 1, 0, "contiguous"),    # no filters
]
CONV_IDS = [f"{c[0]}x{c[1]}x{c[2]}x{c[3]}-f{c[4]}k{c[5]}x{c[6]}s{c[7]}p{c[8]}-{c[9]}" for c in CONV_CASES]


def _conv_inputs(case, dtype, seed=0):
    N, C, H, W, FN, kh, kw, stride, pad, layout = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((FN, C, kh, kw)).astype(dtype)
    b = rng.standard_normal(FN).astype(dtype)
    return _layout(x, layout), _layout(w, layout), _layout(b, layout)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_im2col(backend, case, dtype):
    kh, kw, stride, pad = case[5:9]
    x, _, _ = _conv_inputs(case, dtype)
    col = _run(lambda a: ops.im2col(a, kh, kw, stride, pad), x)
    assert col.dtype == dtype and col.flags.c_contiguous
    np.testing.assert_array_equal(col, _reference(ops.im2col, x, kh, kw, stride, pad))
    np.testing.assert_array_equal(col, naive.im2col(x.astype(np.float64), kh, kw, stride, pad))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_col2im(backend, case, dtype):
    N, C, H, W, _, kh, kw, stride, pad, layout = case
    rows = N * naive.out_size(H, kh, stride, pad) * naive.out_size(W, kw, stride, pad)
    c = _layout(np.random.default_rng(1).standard_normal((rows, C * kh * kw)).astype(dtype), layout)
    x = _run(lambda a: ops.col2im(a, (N, C, H, W), kh, kw, stride, pad), c)
    assert x.dtype == dtype and x.shape == (N, C, H, W)
    want = naive.col2im(c.astype(np.float64), (N, C, H, W), kh, kw, stride, pad)
    _close(x, want, dtype, "col2im vs naive")
    _close(x, _reference(ops.col2im, c, (N, C, H, W), kh, kw, stride, pad), dtype, "col2im vs reference")


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_im2col_col2im_adjoint(backend, case):
    """<im2col(x), c> == <x, col2im(c)> in float64."""
    N, C, H, W, _, kh, kw, stride, pad, _ = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, H, W))
    rows = N * naive.out_size(H, kh, stride, pad) * naive.out_size(W, kw, stride, pad)
    c = rng.standard_normal((rows, C * kh * kw))
    lhs = float(np.sum(ops.im2col(x, kh, kw, stride, pad) * c))
    rhs = float(np.sum(x * ops.col2im(c, x.shape, kh, kw, stride, pad)))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_forward(backend, case, dtype):
    stride, pad = case[7:9]
    x, w, b = _conv_inputs(case, dtype)
    y, ctx = _run(lambda *a: ops.conv2d_forward(*a, stride=stride, pad=pad), x, w, b)
    assert y.dtype == dtype and y.flags.c_contiguous
    want = naive.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride, pad)
    _close(y, want, dtype, "conv forward vs naive")
    _close(y, _reference(ops.conv2d_forward, x, w, b, stride, pad)[0], dtype, "conv forward vs reference")


def test_conv2d_forward_without_bias(backend):
    x = np.random.default_rng(3).standard_normal((2, 3, 5, 5))
    w = np.random.default_rng(4).standard_normal((4, 3, 3, 3))
    y, _ = ops.conv2d_forward(x, w, None, 1, 1)
    _close(y, naive.conv2d(x, w, np.zeros(4), 1, 1), np.float64)


@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_backward(backend, case, dtype, need_dx):
    stride, pad, layout = case[7:10]
    x, w, b = _conv_inputs(case, dtype)
    y, ctx = ops.conv2d_forward(x, w, b, stride, pad)
    dy = _layout(np.random.default_rng(5).standard_normal(y.shape).astype(dtype), layout)
    dx, dW, db = _run(lambda g: ops.conv2d_backward(g, ctx, need_dx), dy)
    wdx, wdW, wdb = naive.conv2d_grads(x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64),
                                       stride, pad)
    with fastdl.use_backend("numpy"):
        _, rctx = ops.conv2d_forward(x, w, b, stride, pad)
        rdx, rdW, rdb = ops.conv2d_backward(dy, rctx, need_dx)
    assert dW.dtype == db.dtype == dtype and dW.shape == w.shape and db.shape == b.shape
    _close(dW, wdW, dtype, "dW vs naive")
    _close(db, wdb, dtype, "db vs naive")
    _close(dW, rdW, dtype, "dW vs reference")
    _close(db, rdb, dtype, "db vs reference")
    if need_dx:
        assert dx.dtype == dtype and dx.shape == x.shape
        _close(dx, wdx, dtype, "dx vs naive")
        _close(dx, rdx, dtype, "dx vs reference")
    else:
        assert dx is None


# --------------------------------------------------------------------------- max pooling

# (N, C, H, W, ph, pw, stride, pad, layout)
POOL_CASES = [
    (2, 3, 6, 6, 2, 2, 2, 0, "contiguous"),   # the common 2x2/2 case
    (2, 3, 7, 5, 2, 2, 2, 0, "strided"),      # 2x2/2 on odd sizes (last row/column unused)
    (2, 3, 7, 7, 3, 3, 2, 1, "readonly"),     # overlapping windows, pad 1
    (1, 2, 9, 8, 3, 2, 3, 1, "contiguous"),   # stride 3, non-square window
    (2, 2, 1, 1, 1, 1, 1, 0, "strided"),      # 1x1
    (2, 4, 5, 5, 5, 5, 1, 0, "contiguous"),   # window equal to the input
    (2, 2, 5, 6, 4, 4, 1, 2, "readonly"),     # pad = window/2
    (1, 1, 2, 3, 3, 3, 1, 1, "contiguous"),   # window larger than the unpadded input
    (0, 3, 4, 4, 2, 2, 2, 0, "contiguous"),   # empty batch
    (2, 64, 4, 4, 2, 2, 2, 0, "strided"),     # 64 channels
    (3, 5, 6, 6, 3, 3, 1, 1, "contiguous"),
]
POOL_IDS = [f"{c[0]}x{c[1]}x{c[2]}x{c[3]}-k{c[4]}x{c[5]}s{c[6]}p{c[7]}-{c[8]}" for c in POOL_CASES]
POOL_DATA = ["random", "ties", "special"]


def _pool_input(case, dtype, data, seed=0):
    """Random values; small integers (many ties); or ties mixed with NaN, +-inf and -inf planes."""
    N, C, H, W = case[:4]
    rng = np.random.default_rng(seed)
    if data == "random":
        x = rng.standard_normal((N, C, H, W))
    else:
        x = rng.integers(-1, 2, (N, C, H, W)).astype(np.float64)
    if data == "special" and x.size:
        flat = x.reshape(-1)
        flat[rng.random(flat.size) < 0.1] = np.nan
        flat[rng.random(flat.size) < 0.1] = -np.inf
        flat[rng.random(flat.size) < 0.05] = np.inf
        x[0, 0] = -np.inf                 # a plane where every real cell is -inf
        if C > 1:
            x[-1, 1] = np.nan             # a plane of NaN
    return _layout(x.astype(dtype), case[8])


@pytest.mark.parametrize("data", POOL_DATA)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_maxpool2d_forward(backend, case, dtype, data):
    ph, pw, stride, pad = case[4:8]
    x = _pool_input(case, dtype, data)
    y, am = _run(lambda a: ops.maxpool2d_forward(a, ph, pw, stride, pad), x)
    assert y.dtype == dtype and am.dtype == np.int64 and y.shape == am.shape
    wy, wam = naive.maxpool2d(x, ph, pw, stride, pad)
    np.testing.assert_array_equal(y, wy.astype(dtype))     # NaN positions must match too
    np.testing.assert_array_equal(am, wam)
    ry, ram = _reference(ops.maxpool2d_forward, x, ph, pw, stride, pad)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(am, ram)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_maxpool2d_backward(backend, case, dtype):
    ph, pw, stride, pad, layout = case[4:9]
    x = _pool_input(case, dtype, "ties")
    _, am = _reference(ops.maxpool2d_forward, x, ph, pw, stride, pad)
    dy = _layout(np.random.default_rng(6).standard_normal(am.shape).astype(dtype), layout)
    am = _layout(am, layout)
    dx = _run(lambda g, a: ops.maxpool2d_backward(g, a, x.shape, ph, pw, stride, pad), dy, am)
    assert dx.dtype == dtype and dx.shape == x.shape
    _close(dx, naive.maxpool2d_backward(dy.astype(np.float64), am, x.shape), dtype, "vs naive")
    _close(dx, _reference(ops.maxpool2d_backward, dy, am, x.shape, ph, pw, stride, pad), dtype, "vs reference")


def test_maxpool2d_default_stride_is_window(backend):
    x = np.random.default_rng(7).standard_normal((1, 2, 6, 6)).astype(np.float32)
    y, am = ops.maxpool2d_forward(x, 3, 3)
    wy, wam = naive.maxpool2d(x, 3, 3, 3, 0)
    np.testing.assert_array_equal(y, wy.astype(np.float32))
    np.testing.assert_array_equal(am, wam)


# --------------------------------------------------------------------------- softmax cross-entropy

# (N, K, layout)
SCE_CASES = [(0, 5, "contiguous"), (1, 1, "contiguous"), (3, 10, "strided"), (7, 13, "readonly"),
             (64, 1000, "contiguous")]
SCE_IDS = [f"{n}x{k}-{lay}" for n, k, lay in SCE_CASES]


@pytest.mark.parametrize("targets", ["labels", "distribution"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SCE_CASES, ids=SCE_IDS)
def test_softmax_cross_entropy(backend, case, dtype, targets):
    N, K, layout = case
    rng = np.random.default_rng(8)
    z = _layout((3 * rng.standard_normal((N, K))).astype(dtype), layout)
    if targets == "labels":
        t = rng.integers(0, K, N)
    else:
        t = rng.random((N, K)).astype(dtype)
        t[:, 0] = 0  # zero weights are allowed
        t = _layout(t / np.maximum(t.sum(axis=1, keepdims=True), 1e-30), layout)
    loss, d = _run(ops.softmax_cross_entropy, z, t)
    assert isinstance(loss, float) and d.dtype == dtype and d.shape == (N, K)
    wloss, wd = naive.softmax_cross_entropy(z.astype(np.float64), t)
    rloss, rd = _reference(ops.softmax_cross_entropy, z, t)
    if N == 0:
        assert np.isnan(loss) and np.isnan(rloss)
        return
    assert loss == pytest.approx(wloss, rel=TOL[dtype], abs=TOL[dtype])
    assert loss == pytest.approx(rloss, rel=TOL[dtype], abs=TOL[dtype])
    _close(d, wd, dtype, "dlogits vs naive")
    _close(d, rd, dtype, "dlogits vs reference")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_extremes(backend, dtype):
    # A confident wrong answer costs its full margin (log-sum-exp, no clipping).
    loss, d = ops.softmax_cross_entropy(np.array([[0.0, 100.0]], dtype), np.array([0]))
    assert loss == pytest.approx(100.0, rel=1e-6)
    np.testing.assert_allclose(d, [[-1.0, 1.0]], atol=1e-6)
    # A -inf logit with zero target weight adds nothing; its gradient is 0.
    z = np.array([[-np.inf, 1.0, 2.0]], dtype)
    t = np.array([[0.0, 0.5, 0.5]], dtype)
    loss, d = ops.softmax_cross_entropy(z, t)
    rloss, rd = _reference(ops.softmax_cross_entropy, z, t)
    assert np.isfinite(loss) and loss == pytest.approx(rloss, rel=1e-6)
    np.testing.assert_allclose(d, rd, rtol=1e-6, atol=1e-7)
    # NaN in a row gives a NaN loss and a NaN gradient row, as in the reference.
    z = np.array([[1.0, np.nan, 0.0], [1.0, 2.0, 3.0]], dtype)
    loss, d = ops.softmax_cross_entropy(z, np.array([0, 1]))
    rloss, rd = _reference(ops.softmax_cross_entropy, z, np.array([0, 1]))
    assert np.isnan(loss) and np.isnan(rloss)
    np.testing.assert_array_equal(np.isnan(d), np.isnan(rd))
    _close(d[1], rd[1], dtype)


@pytest.mark.parametrize("targets", ["labels", "distribution"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("level", [1e15, 1e30])
def test_softmax_cross_entropy_all_equal_huge_logits(backend, level, dtype, targets):
    """Ten equal logits of 1e15 or 1e30: the loss is log 10 and the label's gradient (1/10 - 1)/N
    (the row maximum is subtracted before the exp-sum and before the loss is formed)."""
    N, K = 4, 10
    z = np.full((N, K), level, dtype)
    labels = np.arange(N) % K
    t = labels if targets == "labels" else np.eye(K, dtype=dtype)[labels]
    loss, d = ops.softmax_cross_entropy(z, t)
    assert loss == pytest.approx(np.log(10.0), rel=1e-6)
    want = np.full((N, K), 0.1 / N)
    want[np.arange(N), labels] = (0.1 - 1.0) / N
    np.testing.assert_allclose(d, want, rtol=1e-6)


def test_softmax_cross_entropy_float64_logits_around_1e10(backend):
    """float64 logits of about 1e10 spread by a few units agree with the reference to 1e-12."""
    rng = np.random.default_rng(7)
    z = 1e10 + rng.standard_normal((16, 10)) * 3
    labels = rng.integers(0, 10, 16)
    for t in (labels, np.eye(10)[labels]):
        loss, d = ops.softmax_cross_entropy(z, t)
        rloss, rd = _reference(ops.softmax_cross_entropy, z, t)
        assert loss == pytest.approx(rloss, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(d, rd, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_no_classes(backend, dtype):
    # K == 0: there is nothing to sum, the loss is 0 (nan for an empty batch, as always).
    loss, d = ops.softmax_cross_entropy(np.zeros((3, 0), dtype), np.zeros((3, 0), dtype))
    assert loss == 0.0 and d.shape == (3, 0) and d.dtype == dtype
    loss, d = ops.softmax_cross_entropy(np.zeros((0, 0), dtype), np.zeros((0, 0), dtype))
    assert np.isnan(loss) and d.shape == (0, 0)


@pytest.mark.parametrize("case", [POOL_CASES[0], POOL_CASES[1], POOL_CASES[2]], ids=POOL_IDS[:3])
def test_maxpool2d_backward_routes_any_argmax_in_the_plane(backend, case):
    """argmax need not come from the forward pass: any cell of the plane receives its dy."""
    N, C, H, W, ph, pw, stride, pad = case[:8]
    OH, OW = naive.out_size(H, ph, stride, pad), naive.out_size(W, pw, stride, pad)
    rng = np.random.default_rng(9)
    am = rng.integers(0, H * W, (N, C, OH, OW))
    dy = rng.standard_normal((N, C, OH, OW))
    dx = ops.maxpool2d_backward(dy, am, (N, C, H, W), ph, pw, stride, pad)
    _close(dx, naive.maxpool2d_backward(dy, am, (N, C, H, W)), np.float64)
