"""Fused layer paths: each fused kernel equals the composition of the unfused ones.

On every backend (one body each): ``conv2d_bias_relu_*`` against ``conv2d_*`` with
``relu_*`` and ``relu_maxpool2d_*`` against ``relu_*`` with ``maxpool2d_*`` on the same
backend, bit for bit (the fused kernels reuse the unfused arithmetic: only passes and
masks are saved), and against the NumPy reference to the matrix's tolerances.  float32 and
float64, odd sizes, stride > 1, padding, 1x1, an empty batch, non-contiguous input.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl import ops
from fastdl.backends import numpy_ref

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-4, np.float64: 1e-10}

# (N, C, H, W, FN, k, stride, pad): flat and tile paths, stride 2 and 3, 1x1, empty batch
CONV_CASES = [
    (2, 3, 7, 9, 5, 3, 1, 1),
    (3, 2, 8, 8, 4, 3, 2, 1),
    (2, 4, 5, 5, 6, 1, 1, 0),
    (0, 3, 6, 6, 4, 3, 1, 1),
    (2, 1, 12, 12, 16, 3, 1, 1),
    (2, 16, 9, 9, 20, 5, 1, 2),
    (3, 5, 11, 10, 17, 3, 3, 1),
    (1, 3, 1, 1, 7, 1, 1, 0),
]
# (N, C, H, W, ph, pw, stride, pad): the 2x2 fast path, overlapping windows, odd sizes
POOL_CASES = [
    (2, 3, 8, 8, 2, 2, 2, 0),
    (2, 3, 7, 9, 3, 3, 2, 1),
    (1, 2, 5, 5, 2, 2, 1, 0),
    (0, 3, 4, 4, 2, 2, 2, 0),
    (2, 3, 1, 1, 1, 1, 1, 0),
    (3, 2, 9, 9, 3, 2, 3, 1),
    (2, 4, 13, 11, 2, 2, 2, 0),
]


def _x(shape, dtype, seed, strided):
    """Normal values with exact zeros and -0 among them; strided: a non-contiguous view."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::7] = 0
    x.reshape(-1)[3::11] = -0.0
    if strided:
        big = np.zeros(shape[:-1] + (2 * shape[-1],), dtype)
        big[..., ::2] = x
        x = big[..., ::2]
    return x


def _close(got, want, dtype):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = float(np.abs(want).max()) if want.size and np.abs(want).max() > 0 else 1.0
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("strided", [False, True])
def test_conv_bias_relu_is_the_composition(backend, case, dtype, strided):
    N, C, H, W, FN, k, stride, pad = case
    x = _x((N, C, H, W), dtype, 1, strided)
    w = _x((FN, C, k, k), dtype, 2, False)
    b = _x((FN,), dtype, 3, False)
    x0 = x.copy()
    y, ctx = ops.conv2d_bias_relu_forward(x, w, b, stride, pad)
    np.testing.assert_array_equal(x, x0)
    z, zctx = ops.conv2d_forward(x, w, b, stride, pad)
    r, mask = ops.relu_forward(z)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(y, r)
    assert not np.signbit(y[y == 0]).any(), "-0 must become +0, as relu_forward"
    dy = _x(y.shape, dtype, 4, False)
    got = ops.conv2d_bias_relu_backward(dy, ctx, need_dx=True)
    want = ops.conv2d_backward(ops.relu_backward(dy, mask), zctx, need_dx=True)
    for g, wnt in zip(got, want):
        np.testing.assert_array_equal(g, wnt)
    assert ops.conv2d_bias_relu_backward(dy, ctx, need_dx=False)[0] is None
    ref_y, ref_state = numpy_ref.conv2d_bias_relu_forward(x0, w, b, stride, pad)
    _close(y, ref_y, dtype)
    for g, wnt in zip(got, numpy_ref.conv2d_bias_relu_backward(dy, ref_state, True)):
        _close(g, wnt, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("strided", [False, True])
def test_relu_maxpool_is_the_composition(backend, case, dtype, strided):
    N, C, H, W, ph, pw, stride, pad = case
    x = _x((N, C, H, W), dtype, 5, strided)
    x0 = x.copy()
    y, ctx = ops.relu_maxpool2d_forward(x, ph, pw, stride, pad)
    np.testing.assert_array_equal(x, x0)
    r, mask = ops.relu_forward(x)
    want_y, argmax = ops.maxpool2d_forward(r, ph, pw, stride, pad)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(y, want_y)
    dy = _x(y.shape, dtype, 6, False)
    dx = ops.relu_maxpool2d_backward(dy, ctx)
    want_dx = ops.relu_backward(ops.maxpool2d_backward(dy, argmax, x.shape, ph, pw, stride, pad), mask)
    assert dx.shape == x.shape and dx.dtype == dtype
    np.testing.assert_array_equal(dx, want_dx)  # -0 and +0 compare equal: masked cells are 0
    ref_y, ref_state = numpy_ref.relu_maxpool2d_forward(x0, ph, pw, stride, pad)
    _close(y, ref_y, dtype)
    _close(dx, numpy_ref.relu_maxpool2d_backward(dy, ref_state), dtype)


# (N, C, H, W, FN, k, stride, pad, ph, pw, pool stride, pool pad): the books' layers at batch
# sizes that span several of the C++ kernel's chunks (flat and tile convolutions), odd sizes,
# overlapping and padded pools, an empty batch
CONV_POOL_CASES = [
    (23, 1, 28, 28, 30, 5, 1, 0, 2, 2, 2, 0),    # SimpleConvNet's first layers: flat, 5 chunks
    (7, 2, 15, 15, 12, 5, 1, 1, 2, 2, 2, 0),     # flat on shifted copies, padded columns, odd size
    (37, 16, 14, 14, 16, 3, 1, 1, 2, 2, 2, 0),   # DeepConvNet's conv2 (smaller): flat
    (41, 32, 7, 7, 64, 3, 1, 1, 2, 2, 2, 0),     # DeepConvNet's conv6: tiles
    (5, 3, 9, 11, 7, 3, 2, 1, 3, 3, 2, 1),       # stride 2, overlapping padded pool
    (3, 2, 8, 9, 5, 3, 1, 1, 3, 2, 1, 0),        # pool stride 1, odd output
    (0, 3, 6, 6, 4, 3, 1, 1, 2, 2, 2, 0),        # empty batch
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_POOL_CASES)
@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_relu_maxpool_is_the_composition(backend, case, dtype, need_dx, bias):
    """conv2d_relu_maxpool2d_* equal conv2d_* then relu_maxpool2d_* on the same backend: bit for
    bit, except cpp's gradients, which visit the argmax cells only (the others are zeros), in
    another order: to the matrix's tolerances."""
    N, C, H, W, FN, k, stride, pad, ph, pw, ps, pp = case
    x = _x((N, C, H, W), dtype, 11, strided=N % 2 == 1)
    w = _x((FN, C, k, k), dtype, 12, False) * dtype(0.3)
    b = _x((FN,), dtype, 13, False) if bias else None
    x0 = x.copy()
    y, ctx = ops.conv2d_relu_maxpool2d_forward(x, w, b, stride, pad, ph, pw, ps, pp)
    np.testing.assert_array_equal(x, x0)
    z, zctx = ops.conv2d_forward(x, w, b, stride, pad)
    want_y, pctx = ops.relu_maxpool2d_forward(z, ph, pw, ps, pp)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(y, want_y)
    dy = _x(y.shape, dtype, 14, False)
    got = ops.conv2d_relu_maxpool2d_backward(dy, ctx, need_dx=need_dx)
    want = ops.conv2d_backward(ops.relu_maxpool2d_backward(dy, pctx), zctx, need_dx=need_dx)
    assert (got[0] is None) == (not need_dx)
    for g, wnt in zip(got, want):
        if g is None:
            continue
        assert g.dtype == dtype and g.shape == wnt.shape
        if backend == "cpp":
            _close(g, wnt, dtype)
        else:
            np.testing.assert_array_equal(g, wnt)
    b0 = np.zeros(FN, dtype) if b is None else b  # ops: no bias means zeros
    ref_y, ref_state = numpy_ref.conv2d_relu_maxpool2d_forward(x0, w, b0, stride, pad, ph, pw, ps, pp)
    _close(y, ref_y, dtype)
    for g, wnt in zip(got[1:], numpy_ref.conv2d_relu_maxpool2d_backward(dy, ref_state, False)[1:]):
        _close(g, wnt, dtype)


def test_conv_relu_maxpool_dead_windows_pass_nothing(backend):
    """Where the ReLU stopped a window (argmax -1) no gradient flows, however large dy is
    there; with every window of a channel stopped its dW and db are exactly 0."""
    x = _x((3, 2, 8, 8), np.float64, 21, False)
    w = _x((4, 2, 3, 3), np.float64, 22, False)
    b = np.array([0.0, 0.0, -1e9, 0.0])  # channel 2: relu(conv + b) is 0 everywhere
    y, ctx = ops.conv2d_relu_maxpool2d_forward(x, w, b, 1, 1)
    assert (y[:, 2] == 0).all() and (y[:, [0, 1, 3]] > 0).any()
    dy = _x(y.shape, np.float64, 23, False)
    dy[y == 0] = 1e300  # reaches nothing: those windows' maxima are not > 0
    dx, dw, db = ops.conv2d_relu_maxpool2d_backward(dy, ctx, need_dx=True)
    assert np.isfinite(dx).all() and np.isfinite(dw).all() and np.isfinite(db).all()
    assert (dw[2] == 0).all() and db[2] == 0
    z, zctx = ops.conv2d_forward(x, w, b, 1, 1)
    _, pctx = ops.relu_maxpool2d_forward(z, 2, 2, 2, 0)
    want = ops.conv2d_backward(ops.relu_maxpool2d_backward(dy, pctx), zctx, need_dx=True)
    for g, wnt in zip((dx, dw, db), want):
        _close(g, wnt, np.float64)


def test_conv_relu_maxpool_validates(backend):
    x = np.zeros((2, 2, 6, 6))
    with pytest.raises(ValueError, match="input channels"):
        ops.conv2d_relu_maxpool2d_forward(x, np.zeros((3, 4, 3, 3)))
    with pytest.raises(ValueError, match="pool window .* is larger than the padded input"):
        ops.conv2d_relu_maxpool2d_forward(x, np.zeros((3, 2, 3, 3)), None, 1, 0, 5, 5)
    with pytest.raises(ValueError, match="pad must be at most half the pool window"):
        ops.conv2d_relu_maxpool2d_forward(x, np.zeros((3, 2, 3, 3)), None, 1, 1, 2, 2, 2, 2)
    y, ctx = ops.conv2d_relu_maxpool2d_forward(x, np.zeros((3, 2, 3, 3)), None, 1, 1)
    assert y.shape == (2, 3, 3, 3)
    with pytest.raises(ValueError, match=r"forward output's shape \(2, 3, 3, 3\)"):
        ops.conv2d_relu_maxpool2d_backward(np.zeros((2, 3, 6, 6)), ctx)
    with pytest.raises(TypeError, match="ConvPoolContext"):
        ops.conv2d_relu_maxpool2d_backward(y, ops.conv2d_forward(x, np.zeros((3, 2, 3, 3)))[1])


def test_fused_nan_propagates_like_the_composition(backend):
    x = np.array([[[[np.nan, -1.0], [-2.0, -3.0]], [[-1.0, -2.0], [-3.0, -4.0]]]])
    y, ctx = ops.relu_maxpool2d_forward(x, 2, 2, 2)
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 1, 0, 0] == 0 and not np.signbit(y[0, 1, 0, 0])
    np.testing.assert_array_equal(ops.relu_maxpool2d_backward(np.ones_like(y), ctx), np.zeros_like(x))
    w = np.ones((1, 2, 1, 1))
    y, _ = ops.conv2d_bias_relu_forward(x, w, np.array([0.5]))
    want = ops.relu_forward(ops.conv2d_forward(x, w, np.array([0.5]))[0])[0]
    np.testing.assert_array_equal(y, want)


def test_fused_ops_validate_like_the_unfused(backend):
    x = np.zeros((1, 2, 5, 5))
    with pytest.raises(ValueError, match="input channels"):
        ops.conv2d_bias_relu_forward(x, np.zeros((3, 4, 3, 3)))
    with pytest.raises(TypeError, match="dtype"):
        ops.conv2d_bias_relu_forward(x, np.zeros((3, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="pad"):
        ops.relu_maxpool2d_forward(x, 2, 2, 2, pad=2)
    y, ctx = ops.conv2d_bias_relu_forward(x, np.zeros((3, 2, 3, 3)))
    with pytest.raises(TypeError, match="conv2d_bias_relu_backward"):
        ops.conv2d_backward(y, ctx)
    _, plain = ops.conv2d_forward(x, np.zeros((3, 2, 3, 3)))
    with pytest.raises(TypeError, match="conv2d_backward"):
        ops.conv2d_bias_relu_backward(y, plain)
    with pytest.raises(ValueError, match="shape"):
        ops.conv2d_bias_relu_backward(y[:, :1], ctx)
    with pytest.raises(TypeError, match="PoolContext"):
        ops.relu_maxpool2d_backward(y, ctx)
    _, pctx = ops.relu_maxpool2d_forward(x, 2, 2)
    with pytest.raises(TypeError, match="dtype"):
        ops.relu_maxpool2d_backward(np.zeros((1, 2, 2, 2), np.float32), pctx)


def test_fast_backends_run_the_fused_kernels_natively():
    """No fallback to the reference for the fused kernels on the fast backends' usual shapes."""
    x = _x((2, 3, 8, 8), np.float32, 7, False)
    w = _x((4, 3, 3, 3), np.float32, 8, False)
    for name in [b for b in fastdl.available_backends() if b != "numpy"]:
        before = fastdl.backend.fallback_counts()
        with fastdl.use_backend(name):
            y, ctx = ops.conv2d_bias_relu_forward(x, w, None, 1, 1)
            ops.conv2d_bias_relu_backward(y, ctx)
            p, pctx = ops.relu_maxpool2d_forward(y, 2, 2)
            ops.relu_maxpool2d_backward(p, pctx)
            p, cpctx = ops.conv2d_relu_maxpool2d_forward(x, w, None, 1, 1, 2, 2)
            ops.conv2d_relu_maxpool2d_backward(p, cpctx)
        assert fastdl.backend.fallback_counts() == before, name
