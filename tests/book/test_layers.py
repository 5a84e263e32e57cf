"""Every layer's backward against central-difference gradients in float64, plus
dtype preservation, no mutation of inputs/dout, and bad-input errors."""
import numpy as np
import pytest

from fastdl.gradient import numerical_gradient
from fastdl.layers import (Affine, BatchNormalization, Convolution, Dropout, Pooling, Relu, Sigmoid,
                           SoftmaxWithLoss)

RTOL, ATOL = 1e-5, 1e-8


def rng(seed=0):
    return np.random.default_rng(seed)


def away_from_zero(a):
    """Keep values out of the +-h neighbourhood of a kink at 0."""
    return np.where(np.abs(a) < 0.05, 0.5, a)


def check_layer(layer, forward, x, grads=()):
    """Compare backward(dout) with the numerical gradient of sum(forward(x) * dout).

    ``grads``: (parameter array, name of the gradient attribute on the layer).
    """
    dout = rng(99).standard_normal(forward(x).shape)
    dx = layer.backward(dout.copy())
    analytic = {name: np.array(getattr(layer, name)) for _, name in grads}

    def f(_):
        return float(np.sum(forward(x) * dout))

    if dx is not None:
        assert dx.shape == x.shape
        np.testing.assert_allclose(dx, numerical_gradient(f, x), rtol=RTOL, atol=ATOL)
    for param, name in grads:
        np.testing.assert_allclose(analytic[name], numerical_gradient(f, param), rtol=RTOL, atol=ATOL,
                                   err_msg=name)
    return dx


# ----------------------------------------------------------------- gradients (float64)

def test_affine_nd_input():
    r = rng()
    W, b = r.standard_normal((12, 5)), r.standard_normal(5)
    layer = Affine(W, b)
    x = r.standard_normal((2, 3, 2, 2))
    out = layer.forward(x)
    np.testing.assert_allclose(out, x.reshape(2, 12) @ W + b)
    dx = check_layer(layer, layer.forward, x, [(W, "dW"), (b, "db")])
    assert dx.shape == (2, 3, 2, 2)


def test_relu():
    layer = Relu()
    x = away_from_zero(rng().standard_normal((3, 4)))
    check_layer(layer, layer.forward, x)


def test_sigmoid():
    layer = Sigmoid()
    check_layer(layer, layer.forward, rng().standard_normal((3, 4)) * 3)


@pytest.mark.parametrize("onehot", [False, True])
@pytest.mark.parametrize("dout", [1, 2.5])
def test_softmax_with_loss(backend, onehot, dout):
    r = rng()
    x = r.standard_normal((4, 5)) * 3
    t = np.array([0, 4, 2, 2])
    if onehot:
        t = np.eye(5)[t]
    layer = SoftmaxWithLoss()
    layer.forward(x, t)
    dx = layer.backward(dout)
    num = numerical_gradient(lambda _: dout * layer.forward(x, t), x)
    np.testing.assert_allclose(dx, num, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(layer.y.sum(axis=1), 1)


def test_softmax_with_loss_int_onehot_and_bad_labels():
    x = np.array([[0.0, 100.0]])
    layer = SoftmaxWithLoss()
    assert layer.forward(x, np.array([0])) == pytest.approx(100.0)
    assert layer.forward(x, np.array([[1, 0]])) == pytest.approx(100.0)
    for bad in (-1, 2):
        with pytest.raises(IndexError):
            layer.forward(x, np.array([bad]))


def test_dropout_fixed_mask():
    r = rng()
    x = r.standard_normal((4, 6))
    mask = r.random((4, 6)) > 0.5
    layer = Dropout(0.5)
    np.testing.assert_array_equal(layer.forward(x, True, mask=mask), x * mask)
    dx = check_layer(layer, lambda a: layer.forward(a, True, mask=mask), x)
    assert np.all(dx[~mask] == 0)
    np.testing.assert_allclose(layer.forward(x, train_flg=False), x * 0.5)


def test_dropout_rng_reproducible_and_ratio():
    x = np.ones((200, 50))
    a = Dropout(0.3, rng=7).forward(x)
    b = Dropout(0.3, rng=7).forward(x)
    np.testing.assert_array_equal(a, b)
    assert 0.25 < 1 - a.mean() < 0.35
    with pytest.raises(ValueError):
        Dropout(1.0)
    with pytest.raises(ValueError):
        Dropout(0.5).forward(x, mask=np.ones((2, 2), bool))


@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 2, 2)])
def test_batchnorm_train(shape):
    r = rng()
    D = int(np.prod(shape[1:]))
    gamma, beta = r.standard_normal(D) + 1, r.standard_normal(D)
    layer = BatchNormalization(gamma, beta)
    x = r.standard_normal(shape) * 2 + 1
    out = layer.forward(x, train_flg=True)
    assert out.shape == shape
    xn = out.reshape(shape[0], -1)
    np.testing.assert_allclose((xn - beta).mean(axis=0), 0, atol=1e-12)
    check_layer(layer, lambda a: layer.forward(a, train_flg=True), x, [(gamma, "dgamma"), (beta, "dbeta")])


def test_batchnorm_running_stats_and_inference():
    r = rng()
    x = r.standard_normal((6, 3)) + 2
    layer = BatchNormalization(np.ones(3), np.zeros(3), momentum=0.9)
    layer.forward(x, train_flg=True)
    np.testing.assert_allclose(layer.running_mean, 0.1 * x.mean(axis=0))
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * x.var(axis=0))
    y = layer.forward(x[:1], train_flg=False)  # batch of one is fine at inference
    np.testing.assert_allclose(y, (x[:1] - layer.running_mean) / np.sqrt(layer.running_var + 1e-6))


def test_batchnorm_errors():
    layer = BatchNormalization(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="at least 2 samples"):
        layer.forward(np.ones((1, 3)), train_flg=True)
    with pytest.raises(ValueError, match="features"):
        layer.forward(np.ones((4, 5)), train_flg=True)


@pytest.mark.parametrize("stride, pad", [(1, 0), (2, 1), (2, 2), (3, 1)])
def test_convolution(backend, stride, pad):
    r = rng()
    W, b = r.standard_normal((4, 3, 3, 3)), r.standard_normal(4)
    layer = Convolution(W, b, stride=stride, pad=pad)
    x = r.standard_normal((2, 3, 7, 6))
    out = layer.forward(x)
    oh, ow = (7 + 2 * pad - 3) // stride + 1, (6 + 2 * pad - 3) // stride + 1
    assert out.shape == (2, 4, oh, ow)
    check_layer(layer, layer.forward, x, [(W, "dW"), (b, "db")])


def test_convolution_need_dx_false(backend):
    r = rng()
    W, b = r.standard_normal((2, 1, 3, 3)), r.standard_normal(2)
    x = r.standard_normal((2, 1, 5, 5))
    dout = r.standard_normal((2, 2, 3, 3))
    full = Convolution(W, b)
    full.forward(x)
    assert full.backward(dout) is not None
    first = Convolution(W, b)
    first.need_dx = False
    first.forward(x)
    assert first.backward(dout) is None
    np.testing.assert_allclose(first.dW, full.dW)
    np.testing.assert_allclose(first.db, full.db)


@pytest.mark.parametrize("ph, pw, stride, pad", [(2, 2, 2, 0), (2, 2, 2, 1), (3, 3, 2, 1), (3, 2, 1, 1)])
def test_pooling(backend, ph, pw, stride, pad):
    r = rng()
    # distinct values 0.1 apart: no ties and no argmax change within +-h
    x = r.permutation(2 * 3 * 5 * 5).reshape(2, 3, 5, 5) * 0.1 - 3.0
    layer = Pooling(ph, pw, stride=stride, pad=pad)
    out = layer.forward(x)
    assert out.shape == (2, 3, (5 + 2 * pad - ph) // stride + 1, (5 + 2 * pad - pw) // stride + 1)
    check_layer(layer, layer.forward, x)


def test_pooling_pads_with_minus_inf(backend):
    x = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # all negative: zero padding would win
    out = Pooling(2, 2, stride=2, pad=1).forward(x)
    np.testing.assert_array_equal(out[0, 0], [[-1, -2, -4], [-5, -6, -8], [-13, -14, -16]])


def test_pooling_default_stride_is_2():
    assert Pooling(2, 2).forward(np.zeros((1, 1, 4, 4))).shape == (1, 1, 2, 2)


# ----------------------------------------------------------------- dtype, no mutation

def _layers(dtype):
    r = rng(3)

    def arr(*shape):
        return r.standard_normal(shape).astype(dtype)

    return [
        ("affine", Affine(arr(12, 5), arr(5)), arr(2, 3, 2, 2), {}),
        ("relu", Relu(), arr(3, 4), {}),
        ("sigmoid", Sigmoid(), arr(3, 4), {}),
        ("dropout", Dropout(0.5, rng=0), arr(3, 4), {"train_flg": True}),
        ("batchnorm", BatchNormalization(arr(8), arr(8)), arr(3, 2, 2, 2), {"train_flg": True}),
        ("conv", Convolution(arr(4, 2, 3, 3), arr(4), stride=2, pad=1), arr(2, 2, 5, 5), {}),
        ("pool", Pooling(3, 3, stride=2, pad=1), arr(2, 2, 5, 5), {}),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved_and_inputs_not_mutated(backend, dtype):
    for name, layer, x, kw in _layers(dtype):
        x.setflags(write=False)  # any write into x raises
        x_before = x.copy()
        out = layer.forward(x, **kw)
        assert out.dtype == dtype, name
        dout = np.ones_like(out)
        dout.setflags(write=False)
        dx = layer.backward(dout)
        assert dx.dtype == dtype and dx.shape == x.shape, name
        np.testing.assert_array_equal(x, x_before)
        np.testing.assert_array_equal(dout, 1)
        for g in ("dW", "db", "dgamma", "dbeta"):
            if hasattr(layer, g):
                assert getattr(layer, g).dtype == dtype, (name, g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_with_loss_dtype_and_no_mutation(backend, dtype):
    x = rng().standard_normal((3, 4)).astype(dtype)
    x.setflags(write=False)
    t = np.array([0, 3, 1])
    t.setflags(write=False)
    layer = SoftmaxWithLoss()
    assert isinstance(layer.forward(x, t), float)
    dx = layer.backward()
    assert dx.dtype == dtype
    dx2 = layer.backward()
    dx[...] = 0  # the caller owns the returned array
    np.testing.assert_array_equal(layer.backward(), dx2)


def test_relu_backward_leaves_dout_alone():
    # The book's Relu.backward zeroes dout in place.
    layer = Relu()
    layer.forward(np.array([-1.0, 2.0]))
    dout = np.array([5.0, 7.0])
    np.testing.assert_array_equal(layer.backward(dout), [0.0, 7.0])
    np.testing.assert_array_equal(dout, [5.0, 7.0])


def test_affine_shape_error():
    with pytest.raises(ValueError, match="features"):
        Affine(np.ones((4, 2)), np.zeros(2)).forward(np.ones((3, 5)))
