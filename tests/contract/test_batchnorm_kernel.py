"""The batch-normalisation kernels (``ops.batchnorm_forward`` / ``ops.batchnorm_backward``).

One test body per kernel, run once per available backend, against float64 loops written from
the definitions (per feature: mean, biased variance, normalise, scale and shift; the gradient
from the chain rule through mean and variance) and against the NumPy reference; a
numerical-gradient check in float64; shapes from two samples and one feature to the book's
100 x 100 layers, non-contiguous and read-only inputs, float32 and float64; the checks.
``BatchNormalization`` runs these kernels in training when x, gamma and beta share a dtype.
"""
from __future__ import annotations

import numpy as np
import pytest

from fastdl import ops
from fastdl.layers import BatchNormalization

from test_kernels import DTYPES, TOL, _close, _layout, _reference, _run

# (N, D, layout)
BN_CASES = [
    (2, 1, "contiguous"),      # the fewest samples training allows, one feature
    (1, 5, "contiguous"),      # one sample: xc = 0, y = beta
    (3, 7, "strided"),
    (7, 13, "readonly"),
    (100, 100, "contiguous"),  # the book's MultiLayerNetExtend layers
    (33, 250, "strided"),      # features past whole vectors
]
BN_IDS = [f"{c[0]}x{c[1]}-{c[2]}" for c in BN_CASES]
EPS = 10e-7


def _inputs(case, dtype, seed=0):
    N, D, layout = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, D)) * 3 + 1).astype(dtype)
    gamma = rng.standard_normal(D).astype(dtype)
    beta = rng.standard_normal(D).astype(dtype)
    dout = rng.standard_normal((N, D)).astype(dtype)
    return [_layout(a, layout) for a in (x, gamma, beta, dout)]


def _naive(x, gamma, beta, dout, eps):
    """Loops over features: (y, dx, dgamma, dbeta) in float64 from the definitions."""
    x, gamma, beta, dout = (np.asarray(a, dtype=np.float64) for a in (x, gamma, beta, dout))
    N, D = x.shape
    y, dx = np.zeros((N, D)), np.zeros((N, D))
    dgamma, dbeta = np.zeros(D), np.zeros(D)
    for d in range(D):
        col = x[:, d]
        mu = sum(col) / N
        var = sum((v - mu) ** 2 for v in col) / N
        s = (var + eps) ** 0.5
        xn = (col - mu) / s
        y[:, d] = gamma[d] * xn + beta[d]
        g = dout[:, d]
        dbeta[d] = sum(g)
        dgamma[d] = sum(g * xn)
        dxn = g * gamma[d]
        # d/dx_i of sum_j dxn_j * (x_j - mu) / s, through mu and s
        dx[:, d] = (dxn - sum(dxn) / N - xn * sum(dxn * xn) / N) / s
    return y, dx, dgamma, dbeta


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", BN_CASES, ids=BN_IDS)
def test_batchnorm_forward_and_backward(backend, case, dtype):
    x, gamma, beta, dout = _inputs(case, dtype)
    fwd = _run(lambda *a: ops.batchnorm_forward(*a, EPS), x, gamma, beta)
    y, xc, xn, std, mu, var = fwd
    assert all(a.dtype == dtype for a in fwd)
    assert y.shape == xc.shape == xn.shape == x.shape and std.shape == mu.shape == var.shape == gamma.shape
    bwd = _run(ops.batchnorm_backward, dout, xc, xn, std, gamma)
    assert all(a.dtype == dtype for a in bwd)
    wy, wdx, wdgamma, wdbeta = _naive(x, gamma, beta, dout, EPS)
    _close(y, wy, dtype, "y vs naive")
    _close(mu, np.asarray(x, np.float64).mean(axis=0), dtype, "mu vs naive")
    _close(var, np.asarray(x, np.float64).var(axis=0), dtype, "var vs naive")
    # dx is a difference of terms of size |dout * gamma| / std (exactly 0 for two samples):
    # its error is relative to them, not to dx
    terms = float(np.max(np.abs(np.asarray(dout, np.float64) * np.asarray(gamma, np.float64) / std)))
    ref_bwd = _reference(ops.batchnorm_backward, dout, xc, xn, std, gamma)
    for got, want in ((bwd[0], wdx), (bwd[0], ref_bwd[0])):
        np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * terms, err_msg="dx")
    for got, want, what in zip(bwd[1:], (wdgamma, wdbeta), ("dgamma", "dbeta")):
        _close(got, want, dtype, what + " vs naive")
    for got, want in zip(bwd[1:], ref_bwd[1:]):
        _close(got, want, dtype, "backward vs the reference")
    for got, want in zip(fwd, _reference(lambda *a: ops.batchnorm_forward(*a, EPS), x, gamma, beta)):
        _close(got, want, dtype, "forward vs the reference")


def test_batchnorm_backward_matches_numerical_gradients(backend):
    """float64: dx, dgamma, dbeta against central differences of sum(y * dout)."""
    rng = np.random.default_rng(3)
    x, gamma, beta, dout = (rng.standard_normal(s) for s in ((5, 4), (4,), (4,), (5, 4)))
    y, xc, xn, std, _, _ = ops.batchnorm_forward(x, gamma, beta, EPS)
    dx, dgamma, dbeta = ops.batchnorm_backward(dout, xc, xn, std, gamma)

    def loss(xx, gg, bb):
        return float(np.sum(ops.batchnorm_forward(xx, gg, bb, EPS)[0] * dout))

    h = 1e-6
    for got, arg in ((dx, 0), (dgamma, 1), (dbeta, 2)):
        args = [x, gamma, beta]
        num = np.zeros_like(args[arg])
        for i in np.ndindex(num.shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[arg][i] += h
            minus[arg][i] -= h
            num[i] = (loss(*plus) - loss(*minus)) / (2 * h)
        np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-8)


def test_batchnorm_layer_runs_the_kernels_and_keeps_the_books_state(backend):
    """The layer's values, running statistics and saved xc, xn, std are the kernels' values."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3, 2, 2)).astype(np.float32)  # conv maps: flattened to (6, 12)
    gamma, beta = (rng.standard_normal(12).astype(np.float32) for _ in range(2))
    layer = BatchNormalization(gamma.copy(), beta.copy())
    y = layer.forward(x)
    want = ops.batchnorm_forward(x.reshape(6, 12), gamma, beta, layer.eps)
    np.testing.assert_array_equal(y, want[0].reshape(x.shape))
    for got, w in zip((layer.xc, layer.xn, layer.std), want[1:4]):
        np.testing.assert_array_equal(got, w)
    np.testing.assert_allclose(layer.running_mean, 0.1 * want[4], rtol=1e-6)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * want[5], rtol=1e-6)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    dx = layer.backward(dout)
    wdx, wdgamma, wdbeta = ops.batchnorm_backward(dout.reshape(6, 12), *want[1:4], gamma)
    np.testing.assert_array_equal(dx, wdx.reshape(x.shape))
    np.testing.assert_array_equal(layer.dgamma, wdgamma)
    np.testing.assert_array_equal(layer.dbeta, wdbeta)


def test_batchnorm_layer_mixed_dtypes_keep_numpys_promotion(backend):
    """float64 gamma with float32 x is not the kernels' case: NumPy's promotion, as the book."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    layer = BatchNormalization(np.ones(3), np.zeros(3))
    y = layer.forward(x)
    assert y.dtype == np.float64
    assert layer.backward(np.ones((4, 3), np.float32)).dtype == np.float64


def test_batchnorm_kernels_check_their_arguments(backend):
    x, g = np.zeros((3, 4)), np.ones(4)
    with pytest.raises(ValueError, match=r"x must be 2-D"):
        ops.batchnorm_forward(np.zeros(4), g, g)
    with pytest.raises(ValueError, match="at least one sample"):
        ops.batchnorm_forward(np.zeros((0, 4)), g, g)
    with pytest.raises(ValueError, match=r"gamma must have shape \(4,\)"):
        ops.batchnorm_forward(x, np.ones(3), g)
    with pytest.raises(TypeError, match="beta has dtype float32 but x has float64"):
        ops.batchnorm_forward(x, g, g.astype(np.float32))
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        ops.batchnorm_forward(x.astype(np.int64), g, g)
    for bad in (0.0, -1e-7, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps must be"):
            ops.batchnorm_forward(x, g, g, bad)
    with pytest.raises(ValueError, match=r"std must have shape \(4,\)"):
        ops.batchnorm_backward(x, x, x, np.ones(3), g)
    with pytest.raises(ValueError, match=r"xn must have shape \(3, 4\)"):
        ops.batchnorm_backward(x, x, np.zeros((2, 4)), g, g)
    with pytest.raises(TypeError, match="gamma has dtype float32 but x has float64"):
        ops.batchnorm_backward(x, x, x, g, g.astype(np.float32))
