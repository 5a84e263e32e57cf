"""The affine kernels (``ops.affine_forward`` / ``ops.affine_backward``) on every backend.

One test body per kernel, run once per available backend (the ``backend`` fixture), against
float64 sums of products and the NumPy reference: shapes around the C++ GEMM's tiles (12 rows,
32-column panels, 256-deep pieces of the reduction), below and at its row threshold, empty
batches, no features, no outputs, non-contiguous and read-only inputs, float32 and float64,
each activation.  Tolerances as tests/contract/test_kernels.py: float64 to 1e-10, float32 to
1e-4 relative to the largest magnitude of the answer.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl import ops

from test_kernels import DTYPES, _close, _layout, _reference, _run

# (N, D, M, layout)
AFFINE_CASES = [
    (1, 1, 1, "contiguous"),        # one sample: one sweep over W's rows on cpp (up to 3 rows, 128 columns)
    (1, 4320, 100, "readonly"),     # SimpleConvNet's affine layer at predict batch 1
    (2, 300, 128, "contiguous"),    # the widest sweep
    (3, 5, 7, "strided"),
    (3, 40, 129, "contiguous"),     # too wide to sweep: W read in place (up to 24 rows)
    (4, 17, 33, "readonly"),        # 33 columns: a panel and one column
    (13, 17, 33, "contiguous"),     # a tile of 12 rows and one of 1
    (24, 300, 70, "contiguous"),    # the most rows with W in place; 300 deep
    (25, 40, 70, "readonly"),       # the fewest rows with W packed
    (12, 256, 32, "contiguous"),    # exactly one tile, one panel, one piece of the reduction
    (25, 257, 48, "strided"),       # 257 deep: a piece of 256 and one of 1
    (100, 784, 50, "contiguous"),   # the book's first layer: 50 = 32 + 18 columns
    (37, 600, 16, "readonly"),      # 16 columns: a one-vector panel
    (64, 9, 130, "contiguous"),     # five panels, the last of 2 columns
    (30, 300, 100, "strided"),      # 100 = 3 panels + 4 columns (the last 4 by dot products / along m)
    (100, 4320, 100, "contiguous"),  # SimpleConvNet's affine layer in training
    (260, 520, 40, "contiguous"),   # 40 = 32 + 8, 520 = 16 x 32 + 8: the widest last panels of their own; k in pieces
    (70, 300, 41, "readonly"),      # 41 = 32 + 9: a one-vector tile for the last panel
    (90, 300, 56, "strided"),       # 56 = 32 + 16 + 8: a one-vector tile and the widest few columns
    (40, 70, 49, "contiguous"),     # 49 = 32 + 16 + 1
    (0, 5, 3, "contiguous"),        # empty batch
    (6, 0, 4, "contiguous"),        # no features: x @ W is 0, the bias alone remains
    (5, 4, 0, "contiguous"),        # no outputs
]
AFFINE_IDS = [f"{c[0]}x{c[1]}x{c[2]}-{c[3]}" for c in AFFINE_CASES]
ACTS = [None, "relu", "sigmoid"]


def _inputs(case, dtype, seed=0):
    N, D, M, layout = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D)).astype(dtype)
    W = (rng.standard_normal((D, M)) / np.sqrt(max(D, 1)) * 3).astype(dtype)  # pre-activations of a few units
    b = rng.standard_normal(M).astype(dtype)
    dout = rng.standard_normal((N, M)).astype(dtype)
    return [_layout(a, layout) for a in (x, W, b, dout)]


def _naive_forward(x, W, b, act):
    z = x.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)
    if act == "relu":
        return np.maximum(z, 0)
    if act == "sigmoid":
        return 0.5 * (1 + np.tanh(z / 2))  # 1 / (1 + exp(-z)) without overflow
    return z


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AFFINE_CASES, ids=AFFINE_IDS)
def test_affine_forward(backend, case, dtype, act):
    x, W, b, _ = _inputs(case, dtype)
    y = _run(lambda *a: ops.affine_forward(*a, act=act), x, W, b)
    assert y.dtype == dtype and y.shape == (case[0], case[2])
    _close(y, _naive_forward(x, W, b, act), dtype, "against float64")
    _close(y, _reference(lambda *a: ops.affine_forward(*a, act=act), x, W, b), dtype, "against the reference")


@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AFFINE_CASES, ids=AFFINE_IDS)
def test_affine_backward(backend, case, dtype, need_dx):
    x, W, _, dout = _inputs(case, dtype)
    dx, dW, db = _run(lambda *a: ops.affine_backward(*a, need_dx=need_dx), dout, x, W)
    g, x64, W64 = dout.astype(np.float64), x.astype(np.float64), W.astype(np.float64)
    if need_dx:
        assert dx.dtype == dtype
        _close(dx, g @ W64.T, dtype, "dx")
    else:
        assert dx is None
    assert dW.dtype == db.dtype == dtype
    _close(dW, x64.T @ g, dtype, "dW")
    _close(db, g.sum(axis=0), dtype, "db")


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_activations_at_the_extremes(backend, dtype):
    """Pre-activations of +-1e4 saturate the sigmoid to 0 and 1 without overflow; a NaN in x
    gives NaN in its row under every activation (ReLU does not turn it into 0)."""
    x = np.array([[1e4], [-1e4], [0.0], [np.nan], [-0.5], [3.0]], dtype=dtype)
    W = np.ones((1, 20), dtype=dtype)
    b = np.zeros(20, dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = ops.affine_forward(np.nan_to_num(x), W, b, act="sigmoid")
    np.testing.assert_array_equal(s[:3], np.array([[1.0], [0.0], [0.5]], dtype=dtype) * np.ones((1, 20), dtype))
    for act in ACTS:
        y = ops.affine_forward(x, W, b, act=act)
        assert np.isnan(y[3]).all() and not np.isnan(np.delete(y, 3, axis=0)).any(), act
        _close(np.delete(y, 3, axis=0), _naive_forward(np.delete(x, 3, axis=0), W, b, act), dtype, str(act))


@pytest.mark.skipif("cpp" not in fastdl.available_backends(), reason="fastdl._cpp not built")
def test_cpp_affine_kernels_do_not_depend_on_the_thread_count():
    """The C++ GEMM sums every output element in one fixed order: 1 and 2 threads agree bit
    for bit.  (BLAS, behind the other backends, splits its sums by thread count.)"""
    from fastdl import _cpp

    assert _cpp.dense_available() == (_cpp.build_info()["cpu_level"] == "avx512")
    x, W, b, dout = _inputs((300, 520, 70, "contiguous"), np.float32, seed=4)
    before = fastdl.get_num_threads()
    out = []
    try:
        with fastdl.use_backend("cpp"):
            for n in (1, 2):
                fastdl.set_num_threads(n)
                out.append((ops.affine_forward(x, W, b, act="sigmoid"), *ops.affine_backward(dout, x, W)))
    finally:
        fastdl.set_num_threads(before)
    for a, c in zip(*out):
        np.testing.assert_array_equal(a, c)
