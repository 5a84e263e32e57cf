"""The fused Adam update (ops.adam_update): bit for bit the NumPy formula on every backend.

One test body per backend (the ``backend`` fixture).  The reference is the NumPy
formula written out here, on copies: the fast kernels must give the same bits,
not merely close values, so that training on numba or cpp follows the same path
as on numpy.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastdl
from fastdl import ops
from fastdl.optimizers import Adam

SHAPES = [(), (0,), (1,), (7,), (1001,), (3, 5), (30, 1, 5, 5), (4320, 100)]


def numpy_adam(p, g, m, v, lr, b1, b2, eps=1e-7):
    """The formula on copies (Python floats meet the arrays as NumPy scalars do); m and v
    below the smallest normal number become 0."""
    p, m, v = p.copy(), m.copy(), v.copy()
    g = g.astype(p.dtype)
    m += (1 - b1) * (g - m)
    v += (1 - b2) * (g * g - v)
    tiny = np.finfo(p.dtype).tiny
    m = np.where(np.abs(m) < tiny, p.dtype.type(0), m)
    v = np.where(np.abs(v) < tiny, p.dtype.type(0), v)
    p -= lr * m / (np.sqrt(v) + p.dtype.type(eps))
    return p, m, v


def state(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    p = np.array(rng.standard_normal(shape), dtype)  # np.array: shape () stays a 0-d array
    g = np.array(rng.standard_normal(shape), dtype)
    m = np.array(0.1 * rng.standard_normal(shape), dtype)
    v = np.array(0.01 * rng.random(shape), dtype)
    return p, g, m, v


def assert_same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True)
    # equal values but also equal signs of zero
    assert np.array_equal(np.signbit(a), np.signbit(b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_bit_for_bit_the_numpy_formula(backend, shape, dtype):
    p, g, m, v = state(shape, dtype, seed=len(shape) + (shape[0] if shape else 0))
    for step, lr in enumerate([1e-3, 3.2e-4, 0.05]):
        want = numpy_adam(p, g, m, v, lr, 0.9, 0.999)
        g_before = g.copy()
        ops.adam_update(p, g, m, v, lr, 0.9, 0.999)
        for got, exp in zip((p, m, v), want):
            assert_same_bits(got, exp)
        assert np.array_equal(g, g_before)  # g is read only
        g = np.array(np.random.default_rng(step).standard_normal(shape), dtype)
    assert fastdl.backend.fallback_counts().get((backend, "adam_update"), 0) == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_inf_and_signed_zero_as_numpy(backend, dtype):
    p, g, m, v = state((64,), dtype, seed=3)
    g[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30]
    m[6], v[7], p[8] = np.nan, np.inf, -0.0
    with np.errstate(all="ignore"):
        want = numpy_adam(p, g, m, v, 1e-3, 0.9, 0.999)
        ops.adam_update(p, g, m, v, 1e-3, 0.9, 0.999)
    for got, exp in zip((p, m, v), want):
        assert_same_bits(got, exp)


def test_gradient_of_another_dtype_and_layout(backend):
    p, g, m, v = state((6, 5), np.float32, seed=4)
    g64 = np.asfortranarray(g.astype(np.float64))
    want = numpy_adam(p, g64, m, v, 1e-3, 0.9, 0.999)
    ops.adam_update(p, g64, m, v, 1e-3, 0.9, 0.999)
    for got, exp in zip((p, m, v), want):
        assert_same_bits(got, exp)


def test_strided_params_are_updated_in_place(backend):
    """A non-contiguous parameter (a transposed view) takes the reference path, in place."""
    base = np.random.default_rng(5).standard_normal((5, 7)).astype(np.float32)
    p = base.T
    g = np.ones_like(p)
    m, v = np.zeros_like(p), np.zeros_like(p)
    want = numpy_adam(p, g, m, v, 1e-2, 0.9, 0.999)
    ops.adam_update(p, g, m, v, 1e-2, 0.9, 0.999)
    assert np.shares_memory(p, base)
    for got, exp in zip((p, m, v), want):
        assert_same_bits(got, exp)


def test_float16_params_use_the_reference(backend):
    p, g, m, v = state((9,), np.float16, seed=6)
    want = numpy_adam(p, g, m, v, 1e-3, 0.9, 0.999)
    ops.adam_update(p, g, m, v, 1e-3, 0.9, 0.999)
    for got, exp in zip((p, m, v), want):
        assert_same_bits(got, exp)


def test_adam_optimizer_same_bits_on_every_backend():
    """A few Adam steps on SimpleConvNet-sized parameters give identical parameters everywhere."""
    rng = np.random.default_rng(7)
    params0 = {"W": rng.standard_normal((4320, 100)).astype(np.float32),
               "b": rng.standard_normal(100).astype(np.float32)}
    grads = [{k: rng.standard_normal(a.shape).astype(np.float32) for k, a in params0.items()} for _ in range(3)]
    results = {}
    for name in fastdl.available_backends():
        params = {k: a.copy() for k, a in params0.items()}
        opt = Adam()
        with fastdl.use_backend(name):
            for g in grads:
                opt.update(params, g)
        results[name] = params
    for name, params in results.items():
        for k in params0:
            assert np.array_equal(params[k], results["numpy"][k]), (name, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subnormal_state_is_stored_as_zero(backend, dtype):
    """m and v that land below the smallest normal number are stored as +0 (subnormals
    make every operation 15-55x slower); normal values, zeros of either sign in g and NaN
    go through as the formula has them."""
    tiny = np.finfo(dtype).tiny
    sub = tiny / 64  # a subnormal
    m = np.array([sub, -sub, 1.05 * tiny, -1.05 * tiny, 1e-3, 0.0, np.nan, 2 * tiny, 0.0], dtype)
    v = np.array([sub, tiny / 2, 1e-8, 1e-8, 1e-8, 0.0, 1e-8, tiny * 1.05, 1e30], dtype)
    g = np.array([0.0, 0.0, 0.0, -0.0, 1e-3, 0.0, 1.0, 0.0, 0.0], dtype)
    p = np.ones(m.shape, dtype)
    want = numpy_adam(p, g, m, v, 1e-3, 0.9, 0.999)
    ops.adam_update(p, g, m, v, 1e-3, 0.9, 0.999)
    for got, exp in zip((p, m, v), want):
        assert_same_bits(got, exp)
    assert m[0] == 0 and not np.signbit(m[0]) and m[1] == 0 and not np.signbit(m[1])
    assert v[0] == 0 and v[1] == 0
    assert m[2] == 0 and m[3] == 0  # 1.05 tiny * 0.9 falls below tiny
    assert np.isnan(m[6]) and v[8] > 1e29
    assert m[4] != 0 and m[7] != 0 and v[7] != 0  # 1.8 tiny and 1.049 tiny: normal, kept
    nonzero = np.concatenate([m, v])
    nonzero = nonzero[np.isfinite(nonzero) & (nonzero != 0)]
    assert np.all(np.abs(nonzero) >= tiny)


def test_a_dead_units_state_decays_to_zero_not_subnormals(backend):
    """A gradient that becomes 0 for good: m decays by beta1 every step and, after some 700
    steps, would be subnormal; it is 0 instead, on every backend, with the formula's bits."""
    p, g, m, v = state((1000,), np.float32, seed=12)
    g[:] = 0
    want = (p, m, v)
    for _ in range(900):
        want = numpy_adam(*want[:1], g, *want[1:], 1e-3, 0.9, 0.999)
        ops.adam_update(p, g, m, v, 1e-3, 0.9, 0.999)
    for got, exp in zip((p, m, v), want):
        assert_same_bits(got, exp)
    assert np.all(m == 0)
    assert not np.any((np.abs(v) < np.finfo(np.float32).tiny) & (v != 0))


def test_optimizer_path_same_bits_as_the_checked_kernel(backend):
    """Adam.update calls the kernel without adam_update's checks; the unusual cases (a
    strided parameter, a gradient that is the parameter itself, float64 gradients for a
    float32 parameter) take the checked path.  Every case: the NumPy formula's bits."""
    rng = np.random.default_rng(11)
    base = rng.standard_normal((6, 10)).astype(np.float32)
    cases = {
        "plain": (base.copy(), lambda p: rng.standard_normal(p.shape).astype(np.float32)),
        "strided": (base.copy().T, lambda p: rng.standard_normal(p.shape).astype(np.float32)),
        "grad is param": (base.copy(), lambda p: p),
        "float64 grad": (base.copy(), lambda p: rng.standard_normal(p.shape)),
        "scalar": (np.array(1.5, np.float64), lambda p: np.array(0.25)),
    }
    for name, (p, make_g) in cases.items():
        opt = Adam(lr=0.01)
        m, v = np.zeros_like(p), np.zeros_like(p)
        for step in range(1, 4):
            g = make_g(p)
            lr_t = 0.01 * math.sqrt(1.0 - 0.999 ** step) / (1.0 - 0.9 ** step)  # a Python float, as Adam
            want = numpy_adam(p, g, m, v, lr_t, 0.9, 0.999)
            params = {"p": p}
            opt.update(params, {"p": g})
            m, v = want[1], want[2]
            assert_same_bits(params["p"], want[0]), name
            assert params["p"] is p, name  # updated in place
            assert_same_bits(opt.slots["m"]["p"], want[1]), name
            assert_same_bits(opt.slots["v"]["p"], want[2]), name


@pytest.mark.parametrize("mix", ["one call", "float64 among float32", "a strided one", "shared state"])
def test_update_of_many_parameters_same_bits_as_one_at_a_time(backend, mix, monkeypatch):
    """Adam.update steps all parameters in one backend call where it can (cpp: one C++ call)
    and one at a time where an array does not qualify; either way each parameter gets the
    NumPy formula's bits."""
    if backend == "cpp" and mix == "one call":  # no parameter one at a time
        def one_at_a_time(*args):
            raise AssertionError("the cpp backend should have taken all six parameters in one call")
        monkeypatch.setattr(ops, "_adam_update_checked_by_caller", one_at_a_time)
    rng = np.random.default_rng(5)
    shapes = [(30, 1, 5, 5), (30,), (4320, 100), (), (0,), (7,)]
    params = {f"p{i}": np.array(rng.standard_normal(s), np.float32) for i, s in enumerate(shapes)}
    if mix == "float64 among float32":
        params["p1"] = params["p1"].astype(np.float64)
    if mix == "a strided one":
        params["p0"] = np.asarray(rng.standard_normal((5, 6)), np.float32).T
    opt = Adam(lr=0.01)
    want_p = {k: p.copy() for k, p in params.items()}
    want_m = {k: np.zeros_like(p) for k, p in params.items()}
    want_v = {k: np.zeros_like(p) for k, p in params.items()}
    for step in range(1, 4):
        grads = {k: np.asarray(rng.standard_normal(p.shape), p.dtype) for k, p in params.items()}
        if mix == "shared state" and step > 1:
            grads["p5"] = opt.slots["m"]["p5"]  # the gradient is the parameter's own m
        lr_t = 0.01 * math.sqrt(1.0 - 0.999 ** step) / (1.0 - 0.9 ** step)
        for k in params:
            want_p[k], want_m[k], want_v[k] = numpy_adam(want_p[k], grads[k].copy(), want_m[k], want_v[k],
                                                         lr_t, 0.9, 0.999)
        opt.update(params, grads)
        for k in params:
            assert_same_bits(params[k], want_p[k])
            assert_same_bits(opt.slots["m"][k], want_m[k])
            assert_same_bits(opt.slots["v"][k], want_v[k])


def test_cpp_update_of_many_declines_what_it_does_not_take():
    """The cpp backend's adam_update_many: True after updating every parameter; False, with
    nothing written, for any array it does not take (Adam then updates them one at a time)."""
    cpp = pytest.importorskip("fastdl.backends.cpp")
    p, g, m, v = state((64,), np.float32, 3)
    want = numpy_adam(p, g, m, v, 1e-3, 0.9, 0.999)
    q = [a.copy() for a in (p, g, m, v)]
    assert cpp.adam_update_many([q[0]], [q[1]], [q[2]], [q[3]], 1e-3, 0.9, 0.999, 1e-7) is True
    for got, exp in zip((q[0], q[2], q[3]), want):
        assert_same_bits(got, exp)
    frozen = p.copy()
    frozen.flags.writeable = False
    buf = np.zeros(128, np.float32)
    declined = {
        "float64 m": (p, g, m.astype(np.float64), v),
        "strided p": (np.zeros(128, np.float32)[::2], g, m, v),
        "read-only p": (frozen, g, m, v),
        "g is p": (p, p, m, v),
        "m overlaps v": (p, g, buf[:64], buf[32:96]),
        "sizes differ": (p, g[:63], m, v),
        "float16": tuple(a.astype(np.float16) for a in (p, g, m, v)),
        "a list": (list(p), g, m, v),
    }
    for name, arrays in declined.items():
        before = [np.array(a, copy=True) for a in arrays]
        ok = [(p.copy(), g.copy(), m.copy(), v.copy())]  # a good one first: untouched too
        copies = [a.copy() for a in ok[0]]
        assert cpp.adam_update_many([copies[0], arrays[0]], [copies[1], arrays[1]], [copies[2], arrays[2]],
                                    [copies[3], arrays[3]], 1e-3, 0.9, 0.999, 1e-7) is False, name
        for a, b in zip(arrays, before):
            assert np.array_equal(np.asarray(a), b), name
        for a, b in zip(copies, ok[0]):
            assert np.array_equal(a, b), name
    # float32 and float64 parameters in one call: one dtype per call
    assert cpp.adam_update_many([p.copy(), p.astype(np.float64)], [g, g.astype(np.float64)],
                                [m.copy(), m.astype(np.float64)], [v.copy(), v.astype(np.float64)],
                                1e-3, 0.9, 0.999, 1e-7) is False


@pytest.mark.parametrize("threads", [1, 2])
def test_repeatable_for_any_thread_count(backend, threads):
    old = fastdl.get_num_threads()
    fastdl.set_num_threads(threads)
    try:
        p, g, m, v = state((200_000,), np.float32, seed=8)
        want = numpy_adam(p, g, m, v, 1e-3, 0.9, 0.999)
        ops.adam_update(p, g, m, v, 1e-3, 0.9, 0.999)
        for got, exp in zip((p, m, v), want):
            assert_same_bits(got, exp)
    finally:
        fastdl.set_num_threads(old)


def test_bad_arguments():
    p, g, m, v = state((4,), np.float32, seed=9)
    with pytest.raises(TypeError, match="p must be a NumPy array"):
        ops.adam_update([1.0, 2.0], g, m, v, 1e-3, 0.9, 0.999)
    with pytest.raises(TypeError, match="p must have a float dtype"):
        ops.adam_update(np.arange(4), g, m, v, 1e-3, 0.9, 0.999)
    with pytest.raises(TypeError, match="m has dtype float64"):
        ops.adam_update(p, g, m.astype(np.float64), v, 1e-3, 0.9, 0.999)
    with pytest.raises(ValueError, match=r"v must have p's shape \(4,\)"):
        ops.adam_update(p, g, m, v[:3], 1e-3, 0.9, 0.999)
    with pytest.raises(ValueError, match=r"g must have p's shape \(4,\)"):
        ops.adam_update(p, g[:2], m, v, 1e-3, 0.9, 0.999)
    with pytest.raises(TypeError, match="g must have a real dtype"):
        ops.adam_update(p, g > 0, m, v, 1e-3, 0.9, 0.999)
    ro = m.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="m must be writeable"):
        ops.adam_update(p, g, ro, v, 1e-3, 0.9, 0.999)
    with pytest.raises(ValueError, match="separate arrays"):
        ops.adam_update(p, g, m, m, 1e-3, 0.9, 0.999)
    for kw, bad in [("lr", 0.0), ("lr", float("nan")), ("beta1", 1.0), ("beta2", -0.1), ("eps", 0.0)]:
        args = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7)
        args[kw] = bad
        with pytest.raises(ValueError, match=kw):
            ops.adam_update(p, g, m, v, **args)
    # nothing was changed by the rejected calls
    assert np.array_equal(p, state((4,), np.float32, seed=9)[0])


def test_gradient_that_aliases_the_moments_is_read_before_the_writes(backend):
    p, g, m, v = state((50,), np.float64, seed=10)
    want = numpy_adam(p, m, m, v, 1e-3, 0.9, 0.999)  # g is m itself
    ops.adam_update(p, m, m, v, 1e-3, 0.9, 0.999)
    for got, exp in zip((p, m, v), want):
        assert_same_bits(got, exp)


def test_eps_that_rounds_to_zero_divides_as_numpy(backend):
    """eps = 1e-50 is 0 in float32: m / 0 must give inf / NaN as in NumPy, not an exception."""
    p, g, m, v = state((16,), np.float32, seed=11)
    g[:4] = 0.0
    m[:4] = [0.0, 1.0, -1.0, 0.0]
    v[:4] = 0.0
    with np.errstate(all="ignore"):
        want = numpy_adam(p, g, m, v, 1e-3, 0.9, 0.999, eps=1e-50)
        ops.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, eps=1e-50)
    assert not np.isfinite(want[0][:3]).any()
    for got, exp in zip((p, m, v), want):
        assert_same_bits(got, exp)


@pytest.mark.parametrize("kw", ["beta1", "beta2"])
@pytest.mark.parametrize("bad", [1.0, -0.5, 2.0])
def test_adam_rejects_betas_outside_0_1(kw, bad):
    with pytest.raises(ValueError, match=f"{kw} must be in"):
        Adam(**{kw: bad})
    opt = Adam()
    d = opt.state_dict()
    d["hyperparams"][kw] = bad
    with pytest.raises(ValueError, match=f"{kw} must be in"):
        opt.load_state_dict(d)
    assert getattr(opt, kw) == getattr(Adam(), kw)  # unchanged: all or nothing
