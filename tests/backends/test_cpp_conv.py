"""The C++ convolution's own code paths (tests/test_kernels.py covers the kernel contract).

fastdl._cpp picks, per call, between two kernel families (channel-lane register tiles
over groups of samples, and stride-1 "flat" pixel-lane kernels) and, per process, a SIMD
level (AVX-512, AVX2, scalar).  FASTDL_CONV=tile|flat and FASTDL_CPU=scalar|avx2 force
them, so each combination is checked against the NumPy reference in a subprocess (and the
fused relu(conv + b) against the unfused kernels on the same path, and the fused conv ->
relu -> max pool, whose weight gradient has a kernel of its own, against the reference).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

_cpp = pytest.importorskip("fastdl._cpp")
if not hasattr(_cpp, "conv2d_forward"):
    pytest.skip("fastdl._cpp has no convolution", allow_module_level=True)

from fastdl.backends import numpy_ref as ref  # noqa: E402

# (N, C, H, W, FN, kh, kw, stride, pad): the books' layers (small batches) and odd cases:
# stride 2/3, pad beyond the kernel, 1x1, non-square kernels, channel counts that are not
# whole vectors, "same" layers with many input channels (3x3 and 5x5), N = 0, C = 0, thin
# tall kernels, the flat kernels on shifted copies of the input (FlatJob::shifted).
SHAPES = [
    (2, 1, 28, 28, 16, 3, 3, 1, 1),
    (2, 16, 14, 14, 32, 3, 3, 1, 2),
    (2, 32, 8, 8, 64, 3, 3, 1, 1),
    (3, 1, 28, 28, 30, 5, 5, 1, 0),
    (17, 4, 6, 6, 70, 3, 3, 1, 1),
    (5, 7, 9, 8, 33, 4, 3, 2, 2),
    (4, 2, 10, 11, 7, 3, 2, 3, 1),
    (2, 3, 5, 6, 4, 3, 3, 1, 3),
    (2, 2, 4, 4, 3, 2, 3, 1, 2),
    (2, 5, 6, 6, 3, 1, 1, 1, 0),
    (2, 3, 5, 5, 4, 1, 1, 2, 1),
    (3, 1, 3, 3, 1, 3, 3, 1, 1),
    (3, 16, 12, 12, 16, 3, 3, 1, 1),
    (2, 6, 7, 9, 5, 5, 5, 1, 2),
    (0, 3, 5, 5, 4, 3, 3, 1, 1),
    (2, 0, 5, 5, 3, 3, 3, 1, 1),
    (2, 1, 12, 12, 5, 8, 1, 1, 0),   # thin windows of 8 rows (4 row pairs without dx)
    (2, 1, 11, 13, 3, 7, 2, 1, 1),   # 7 rows: the last pair half empty
    (3, 1, 13, 17, 9, 3, 5, 1, 2),   # flat on shifted copies of the input: padded columns, odd sizes
    (2, 2, 9, 10, 12, 4, 4, 1, 0),   # shifted copies of two channels, rows shorter than a vector
]

_CHECK = textwrap.dedent("""
    import json, sys
    import numpy as np
    from fastdl import _cpp
    from fastdl.backends import numpy_ref as ref

    def rel(a, b):
        if a.size == 0:
            return 0.0
        return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))

    rng = np.random.default_rng(0)
    worst = {}
    for shape in json.loads(sys.argv[1]):
        N, C, H, W, FN, kh, kw, s, p = shape
        for dt in (np.float32, np.float64):
            x = rng.standard_normal((N, C, H, W)).astype(dt)
            w = rng.standard_normal((FN, C, kh, kw)).astype(dt)
            b = rng.standard_normal(FN).astype(dt)
            y, st = _cpp.conv2d_forward(x, w, b, s, p)
            dy = rng.standard_normal(y.shape).astype(dt)
            dx, dw, db = _cpp.conv2d_backward(dy, st, True)
            y64, ctx = ref.conv2d_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), s, p)
            rdx, rdw, rdb = ref.conv2d_backward(dy.astype(np.float64), ctx, True)
            assert y.dtype == dx.dtype == dw.dtype == db.dtype == dt
            e = max(rel(y, y64), rel(dx, rdx), rel(dw, rdw), rel(db, rdb))
            worst[dt.__name__] = max(worst.get(dt.__name__, 0.0), e)
            # the fused relu(conv + b) on this path: bit for bit the unfused kernels' values
            yr, sr = _cpp.conv2d_bias_relu_forward(x, w, b, s, p)
            z, mask = _cpp.relu_forward(y)
            assert np.array_equal(yr, z, equal_nan=True), shape
            got = _cpp.conv2d_bias_relu_backward(dy, sr, True)
            want = _cpp.conv2d_backward(_cpp.relu_backward(dy, mask), st, True)
            assert all(np.array_equal(g, h) for g, h in zip(got, want)), shape
            # conv -> relu -> max pool (its weight gradient from the argmax cells alone)
            for ph, ps, pp in ((2, 2, 0), (3, 2, 1)):
                try:
                    yp, sp = _cpp.conv2d_relu_maxpool2d_forward(x, w, b, s, p, ph, ph, ps, pp)
                except ValueError:  # a pool window larger than this layer's output
                    continue
                dyp = rng.standard_normal(yp.shape).astype(dt)
                got = _cpp.conv2d_relu_maxpool2d_backward(dyp, sp, True)
                # without dx: db the same sums; dW too, or, for thin windows (kw * C <= 8,
                # AVX-512), from a kernel of its own, to rounding
                alone = _cpp.conv2d_relu_maxpool2d_backward(dyp, sp, False)
                assert alone[0] is None and np.array_equal(alone[2], got[2]), shape
                tol = (1e-6 if dt == np.float32 else 1e-14) * float(np.abs(got[1]).max(initial=0))
                assert np.allclose(alone[1], got[1], rtol=0, atol=tol), shape
                if kw * C > 8:
                    assert np.array_equal(alone[1], got[1]), shape
                if (ph, ps, pp) == (2, 2, 0):  # the argmax's other form (cells / plane indices): same sums
                    am, ow = sp[4], (W + 2 * p - kw) // s + 1
                    py, px = np.indices(yp.shape[2:])
                    if am.dtype == np.int8:
                        other = np.where(am < 0, -1, (2 * py + am // 2) * ow + 2 * px + am % 2).astype(np.int64)
                    else:
                        other = np.where(am < 0, -1, (am // ow - 2 * py) * 2 + am % ow - 2 * px).astype(np.int8)
                    again = _cpp.conv2d_relu_maxpool2d_backward(dyp, sp[:4] + (other,) + sp[5:], True)
                    assert all(np.array_equal(a, h) for a, h in zip(again, got)), shape
                r64, rs = ref.conv2d_relu_maxpool2d_forward(x.astype(np.float64), w.astype(np.float64),
                                                            b.astype(np.float64), s, p, ph, ph, ps, pp)
                want = ref.conv2d_relu_maxpool2d_backward(dyp.astype(np.float64), rs, True)
                e = max([rel(yp, r64)] + [rel(g, h) for g, h in zip(got, want)])
                worst[dt.__name__] = max(worst.get(dt.__name__, 0.0), e)
    print(json.dumps({"level": _cpp.build_info()["cpu_level"], "worst": worst}))
""")


@pytest.mark.parametrize("path", ["tile", "flat", "auto"])
@pytest.mark.parametrize("level", ["scalar", "avx2", "native"])
def test_each_simd_level_and_kernel_family_matches_reference(level, path):
    env = dict(os.environ)
    env.pop("FASTDL_CPU", None)
    env.pop("FASTDL_CONV", None)
    if level != "native":
        env["FASTDL_CPU"] = level
    if path != "auto":
        env["FASTDL_CONV"] = path
    out = subprocess.run([sys.executable, "-c", _CHECK, json.dumps(SHAPES)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if level != "native":
        assert res["level"] in (level, "scalar")  # capped, or a CPU without that level
    assert res["worst"]["float64"] < 1e-12
    assert res["worst"]["float32"] < 1e-5


def _layer(dtype=np.float32, N=6, C=8, H=10, FN=20, k=3, pad=1, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, H)).astype(dtype)
    w = rng.standard_normal((FN, C, k, k)).astype(dtype)
    b = rng.standard_normal(FN).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("FN", [8, 40])  # one vector of output channels (flat path), several (tiles)
def test_no_dx_when_not_needed_and_same_weight_gradients(FN):
    x, w, b = _layer(FN=FN)
    y, st = _cpp.conv2d_forward(x, w, b, 1, 1)
    dy = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    dx, dw, db = _cpp.conv2d_backward(dy, st, True)
    none, dw2, db2 = _cpp.conv2d_backward(dy, st, False)
    assert dx is not None and dx.shape == x.shape
    assert none is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


@pytest.mark.parametrize("stride", [1, 2])
def test_deterministic_and_thread_count_independent(stride):
    x, w, b = _layer(N=23, FN=40)
    before = _cpp.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 2):
            _cpp.set_num_threads(threads)
            y, st = _cpp.conv2d_forward(x, w, b, stride, 1)
            dy = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
            results.append((y,) + _cpp.conv2d_backward(dy, st, True))
    finally:
        _cpp.set_num_threads(before)
    for a, b2 in zip(results[1], results[2]):  # same thread count: bit for bit
        np.testing.assert_array_equal(a, b2)
    for a, b1 in zip(results[0], results[1]):  # other thread count: same up to rounding
        np.testing.assert_allclose(a, b1, rtol=1e-5, atol=1e-5 * np.abs(b1).max())


def test_read_only_inputs_are_accepted_and_left_alone():
    x, w, b = _layer(dtype=np.float64)
    copies = [a.copy() for a in (x, w, b)]
    for a in (x, w, b):
        a.flags.writeable = False
    y, st = _cpp.conv2d_forward(x, w, b, 1, 1)
    dy = np.ones_like(y)
    dy.flags.writeable = False
    _cpp.conv2d_backward(dy, st, True)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(dy, 1.0)
    want, _ = ref.conv2d_forward(x, w, b, 1, 1)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_layers_at_every_output_alignment(dtype):
    # The direct kernel for "same" layers (AVX-512: up to 16 output channels, float and
    # double) shifts its pixel blocks so that its stores are 64-byte aligned, by however far
    # the output's first element is from a 64-byte boundary.  Small outputs come from
    # malloc, 16-byte aligned: allocations of other sizes in between move them through the
    # four offsets.  The junk is above NumPy's own cache of small blocks (1 KiB), so that it
    # reaches malloc.
    rng = np.random.default_rng(5)
    shapes = [(3, 16, 12, 12, 16, 3, 1), (2, 1, 8, 8, 16, 3, 1), (2, 3, 4, 6, 9, 5, 2)]
    offsets, junk = set(), []
    for _ in range(60):
        junk.append(np.empty(int(rng.integers(1025, 20000)), np.uint8))
        if len(junk) > 10:
            junk.pop(int(rng.integers(0, 10)))
        for N, C, H, W, FN, k, p in shapes:
            x = rng.standard_normal((N, C, H, W)).astype(dtype)
            w = rng.standard_normal((FN, C, k, k)).astype(dtype)
            b = rng.standard_normal(FN).astype(dtype)
            y, st = _cpp.conv2d_forward(x, w, b, 1, p)
            dy = rng.standard_normal(y.shape).astype(dtype)
            dx, _, _ = _cpp.conv2d_backward(dy, st, True)
            want, ctx = ref.conv2d_forward(x.astype(np.float64), w.astype(np.float64),
                                           b.astype(np.float64), 1, p)
            want_dx, _, _ = ref.conv2d_backward(dy.astype(np.float64), ctx, True)
            tol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(y, want, rtol=tol, atol=tol * np.abs(want).max())
            np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol * np.abs(want_dx).max())
            offsets.add(y.ctypes.data % 64)
    assert len(offsets) >= 2, f"outputs only ever started at offset {offsets} from 64 bytes"


@pytest.mark.parametrize("C, k", [(8, 3), (1, 5)])  # 16-float and 8-float vectors for the weight gradient
def test_conv_relu_maxpool_backward_deterministic_per_thread_count(C, k):
    """The sparse backward's dW and db are per-thread partial sums over a fixed split of the
    batch: bit for bit on the same thread count, to rounding on another; dx is per sample."""
    x, w, b = _layer(N=23, C=C, H=12, FN=20, k=k)
    before = _cpp.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 2):
            _cpp.set_num_threads(threads)
            y, st = _cpp.conv2d_relu_maxpool2d_forward(x, w, b, 1, 1, 2, 2, 2, 0)
            dy = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
            results.append((y,) + _cpp.conv2d_relu_maxpool2d_backward(dy, st, True)
                           + _cpp.conv2d_relu_maxpool2d_backward(dy, st, False)[1:])
    finally:
        _cpp.set_num_threads(before)
    for a, b2 in zip(results[1], results[2]):
        np.testing.assert_array_equal(a, b2)
    np.testing.assert_array_equal(results[0][0], results[1][0])  # the forward: any thread count
    np.testing.assert_array_equal(results[0][1], results[1][1])  # dx: per sample
    for a, b1 in zip(results[0][2:], results[1][2:]):
        np.testing.assert_allclose(a, b1, rtol=1e-5, atol=1e-5 * np.abs(b1).max())


def _fused_argmax(state, shape):
    """The argmax array a fused context holds: int64 plane indices or int8 window cells."""
    argmax = [a for a in state if isinstance(a, np.ndarray) and a.dtype in (np.int64, np.int8)]
    assert len(argmax) == 1 and argmax[0].shape == shape
    return argmax[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_relu_maxpool_keeps_window_cells_where_the_pool_reads_the_sums(dtype):
    """Where the pool reads the flat kernels' sums (a 5x5 first layer, 2x2 pool, AVX-512), the
    context keeps each window's argmax cell in a byte (0-3, -1 where the ReLU stopped it): the
    cell of the composition's argmax.  Elsewhere, indices into the convolution's output."""
    x, w, b = _layer(dtype, N=3, C=1, H=12, FN=30, k=5, pad=0)
    y, state = _cpp.conv2d_relu_maxpool2d_forward(x, w, b, 1, 0, 2, 2, 2, 0)
    am = _fused_argmax(state, y.shape)
    z = ref.conv2d_forward(x, w, b, 1, 0)[0]
    zmax, plane = ref.maxpool2d_forward(z, 2, 2, 2, 0)
    want = np.where(zmax > 0, plane, -1)  # -1: the ReLU stopped the window
    assert (want >= 0).any() and (want < 0).any()
    if _cpp.build_info()["cpu_level"] != "avx512":
        assert am.dtype == np.int64
        np.testing.assert_array_equal(am, want)
        return
    assert am.dtype == np.int8
    ow = z.shape[3]
    py, px = np.indices(y.shape[2:])
    cell = (plane // ow - 2 * py) * 2 + (plane % ow - 2 * px)
    assert set(np.unique(cell[want >= 0])) == {0, 1, 2, 3}
    np.testing.assert_array_equal(am, np.where(want < 0, -1, cell))
    y3, st3 = _cpp.conv2d_relu_maxpool2d_forward(x, w, b, 1, 0, 3, 3, 3, 0)  # 3 x 3 windows: indices
    assert _fused_argmax(st3, y3.shape).dtype == np.int64


@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("layer", [(2, 3, 1), (1, 5, 0)])  # plane indices; cells on AVX-512
@pytest.mark.parametrize("which", [0, 1, 2])
def test_conv_relu_maxpool_backward_refuses_a_bad_argmax(need_dx, layer, which):
    """An argmax in the fused context outside [-1, OH * OW) of the convolution's output (or a
    window cell outside [-1, 3]): an error, never a gradient read from elsewhere (with dx, and
    with the weight gradient's own kernel alone)."""
    C, k, pad = layer
    x, w, b = _layer(np.float64, N=2, C=C, H=8, FN=3, k=k, pad=pad)
    y, state = _cpp.conv2d_relu_maxpool2d_forward(x, w, b, 1, pad, 2, 2, 2, 0)
    argmax = _fused_argmax(state, y.shape)
    npix = (8 + 2 * pad - k + 1) ** 2
    argmax.reshape(-1)[5] = (-2, 4, 127)[which] if argmax.dtype == np.int8 else (-2, npix, 10**9)[which]
    with pytest.raises(ValueError, match="argmax entry lies outside"):
        _cpp.conv2d_relu_maxpool2d_backward(np.ones_like(y), state, need_dx)
