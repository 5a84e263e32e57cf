"""ReLU in one pass (ops.relu_forward / relu_backward): bit for bit NumPy's formula on every backend."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl import ops

# inf * 0 in the reference's multiply is NaN with NumPy's "invalid value" warning
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in multiply:RuntimeWarning")
from fastdl.layers import Relu

SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 3, 4, 5), (100, 30, 24, 24)]
SPECIALS = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3.0, -3.0]


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True)
    assert np.array_equal(np.signbit(a), np.signbit(b))


def sample(shape, dtype, seed):
    x = np.array(np.random.default_rng(seed).standard_normal(shape), dtype)
    flat = x.reshape(-1)
    k = min(flat.size, len(SPECIALS))
    flat[:k] = np.array(SPECIALS[:k], dtype)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_backward_bit_for_bit(backend, shape, dtype):
    x = sample(shape, dtype, seed=len(shape))
    dout = sample(shape, dtype, seed=len(shape) + 1)[::-1] if shape else sample(shape, dtype, 1)
    x_before, dout_before = x.copy(), dout.copy()
    y, mask = ops.relu_forward(x)
    same_bits(y, np.maximum(x, 0))
    assert mask.dtype == np.bool_ and np.array_equal(mask, x > 0)
    dx = ops.relu_backward(dout, mask)
    same_bits(dx, np.multiply(dout, x > 0, dtype=dtype))
    same_bits(x, x_before)  # inputs untouched
    same_bits(dout, dout_before)
    assert fastdl.backend.fallback_counts().get((backend, "relu_forward"), 0) == 0
    assert fastdl.backend.fallback_counts().get((backend, "relu_backward"), 0) == 0


def test_non_contiguous_and_read_only_inputs(backend):
    base = sample((6, 10), np.float32, seed=3)
    x = base[:, ::2]
    x.flags.writeable = False if x.base is None else x.flags.writeable
    ro = base.copy()
    ro.flags.writeable = False
    for arr in (x, ro, base.T):
        y, mask = ops.relu_forward(arr)
        same_bits(y, np.maximum(arr, 0))
        same_bits(ops.relu_backward(arr, mask), np.multiply(arr, arr > 0, dtype=arr.dtype))


def test_other_dtypes_use_numpy(backend):
    x = np.array([-2, 0, 3], np.int32)
    y, mask = ops.relu_forward(x)
    assert y.dtype == np.int32 and y.tolist() == [0, 0, 3] and mask.tolist() == [False, False, True]
    x16 = np.array([-1.5, np.nan, 2.0], np.float16)
    y16, m16 = ops.relu_forward(x16)
    same_bits(y16, np.maximum(x16, 0))
    same_bits(ops.relu_backward(x16, m16), np.multiply(x16, m16, dtype=np.float16))


def test_bad_arguments():
    with pytest.raises(TypeError, match="x must have a real dtype"):
        ops.relu_forward(np.array([True, False]))
    with pytest.raises(TypeError, match="mask must be a bool array"):
        ops.relu_backward(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"mask must have dout's shape \(3,\)"):
        ops.relu_backward(np.ones(3), np.ones(4, bool))
    with pytest.raises(TypeError, match="dout must have a real dtype"):
        ops.relu_backward(np.ones(3, complex), np.ones(3, bool))


@pytest.mark.parametrize("threads", [1, 2])
def test_repeatable_for_any_thread_count(backend, threads):
    old = fastdl.get_num_threads()
    fastdl.set_num_threads(threads)
    try:
        x = sample((300_001,), np.float32, seed=4)
        y, mask = ops.relu_forward(x)
        same_bits(y, np.maximum(x, 0))
        same_bits(ops.relu_backward(x, mask), np.multiply(x, mask, dtype=np.float32))
    finally:
        fastdl.set_num_threads(old)


def test_relu_layer_same_on_every_backend():
    x = sample((4, 3, 5, 5), np.float64, seed=5)
    dout = sample((4, 3, 5, 5), np.float64, seed=6)
    outs = {}
    for name in fastdl.available_backends():
        layer = Relu()
        with fastdl.use_backend(name):
            outs[name] = (layer.forward(x), layer.backward(dout))
    for y, dx in outs.values():
        same_bits(y, outs["numpy"][0])
        same_bits(dx, outs["numpy"][1])
