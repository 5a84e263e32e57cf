"""Numerical differentiation and gradient checking (fastdl.gradient)."""
import numpy as np
import pytest

from fastdl.gradient import gradient_check, gradient_descent, numerical_diff, numerical_gradient
from fastdl.models import TwoLayerNet


def test_numerical_diff_book_example():
    # d/dx (0.01 x^2 + 0.1 x) at 5 is 0.2
    assert numerical_diff(lambda x: 0.01 * x ** 2 + 0.1 * x, 5.0) == pytest.approx(0.2, rel=1e-8)


def test_numerical_gradient_any_shape_and_input_unchanged():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))
    before = x.copy()
    g = numerical_gradient(lambda a: np.sum(a ** 3), x)
    assert g.shape == x.shape and g.dtype == x.dtype
    np.testing.assert_allclose(g, 3 * before ** 2, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_restores_input_when_f_raises():
    x = np.array([1.0, 2.0, 3.0])
    calls = []

    def f(a):
        calls.append(a.copy())
        if len(calls) == 4:  # fails while x[1] is perturbed
            raise RuntimeError("boom")
        return a.sum()

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(f, x)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])
    assert calls[3][1] != 2.0  # the failure really happened mid-perturbation


def test_numerical_gradient_f_reading_array_by_reference():
    # The book's networks: f ignores its argument and reads the parameter array.
    W = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = numerical_gradient(lambda _: float(np.sum(W ** 2)), W)
    np.testing.assert_allclose(g, 2 * W, rtol=1e-7)


def test_numerical_gradient_rejects_non_float():
    with pytest.raises(TypeError):
        numerical_gradient(np.sum, np.array([1, 2, 3]))
    with pytest.raises(TypeError):
        numerical_gradient(np.sum, [1.0, 2.0])


def test_gradient_descent_book_example():
    init = np.array([-3.0, 4.0])
    x = gradient_descent(lambda a: a[0] ** 2 + a[1] ** 2, init, lr=0.1, step_num=100)
    np.testing.assert_allclose(x, 0, atol=1e-8)
    np.testing.assert_array_equal(init, [-3.0, 4.0])


def test_gradient_check_two_layer_net():
    rng = np.random.default_rng(1)
    net = TwoLayerNet(4, 5, 3, weight_init_std=0.5, dtype=np.float64, seed=0)
    x, t = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    before = {k: v.copy() for k, v in net.params.items()}
    errors = gradient_check(net, x, t)
    assert set(errors) == set(net.params)
    assert max(errors.values()) < 1e-5, errors
    for k in before:
        np.testing.assert_array_equal(net.params[k], before[k])


def test_gradient_check_detects_a_wrong_gradient():
    rng = np.random.default_rng(1)
    net = TwoLayerNet(4, 5, 3, weight_init_std=0.5, dtype=np.float64, seed=0)
    x, t = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    right = net.gradient

    def wrong(x, t):
        g = right(x, t)
        g["b2"] = g["b2"] * 1.1
        return g

    net.gradient = wrong
    errors = gradient_check(net, x, t)
    assert errors["b2"] > 0.05 and errors["W1"] < 1e-6
