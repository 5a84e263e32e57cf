"""Activations, softmax and losses (fastdl.functions), including the book's bugs fixed."""
import numpy as np
import pytest

from fastdl import functions as F
from fastdl.gradient import numerical_diff

BOOK_Y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
BOOK_T = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0])


def test_identity_and_step():
    x = np.array([-1.0, 0.0, 2.0], dtype=np.float32)
    assert F.identity_function(x) is x
    s = F.step_function(x)
    assert s.dtype == np.float32 and s.tolist() == [0, 0, 1]
    assert F.step_function(np.array([-2, 3])).dtype == np.int64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_no_overflow_and_dtype(dtype):
    x = np.array([-1000.0, -20.0, 0.0, 3.0, 1000.0], dtype=dtype)
    s = F.sigmoid(x)  # filterwarnings=error: an overflow warning would fail this test
    assert s.dtype == dtype
    np.testing.assert_allclose(s[1:4], 1 / (1 + np.exp(-x[1:4].astype(np.float64))), rtol=1e-6)
    assert s[0] == 0 and s[-1] == 1 and s[2] == 0.5
    # far in the negative tail the value is exp(x), down to the dtype's subnormals (not 0)
    far = -100.0 if dtype == np.float32 else -740.0  # exp(-far) overflows; exp(far) is a subnormal
    tail = F.sigmoid(np.array([-80.0, -40.0, far], dtype=dtype))
    np.testing.assert_allclose(tail[:2], np.exp(np.array([-80.0, -40.0])).astype(dtype), rtol=1e-6)
    assert tail[2] > 0
    # NaN propagates, on the path for tame inputs and on the one for the far tail
    for v in ([np.nan, 0.0], [np.nan, -1000.0]):
        out = F.sigmoid(np.array(v, dtype=dtype))
        assert np.isnan(out[0]) and out.dtype == dtype
    np.testing.assert_allclose(F.sigmoid(np.array([-29.0, 29.0], dtype=dtype)),
                               1 / (1 + np.exp(np.array([29.0, -29.0]))), rtol=1e-6)


def test_sigmoid_grad_matches_numerical_diff():
    for v in (-3.0, -0.5, 0.0, 1.7):
        assert F.sigmoid_grad(np.array(v)) == pytest.approx(numerical_diff(F.sigmoid, v), rel=1e-7)


def test_relu_and_grad():
    x = np.array([[-1.5, 0.0, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(F.relu(x), [[0, 0, 2]])
    assert F.relu(x).dtype == np.float32
    g = F.relu_grad(x)
    assert g.dtype == np.float32 and g.tolist() == [[0, 0, 1]]  # 0 at 0, like the Relu layer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_overflow_1d_2d(dtype):
    y = F.softmax(np.array([1010.0, 1000.0, 990.0], dtype=dtype))
    assert y.dtype == dtype
    np.testing.assert_allclose(y, [9.99954600e-01, 4.53978686e-05, 2.06106005e-09], rtol=1e-5)
    X = np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]], dtype=dtype)
    Y = F.softmax(X)
    np.testing.assert_allclose(Y, [[0.5, 0.5], [0.25, 0.75]], rtol=1e-6)
    np.testing.assert_allclose(Y.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(F.softmax(X)[1], F.softmax(X[1]))


def test_sum_squared_error_book_example():
    assert F.sum_squared_error(BOOK_Y, BOOK_T) == pytest.approx(0.0975)


def test_cross_entropy_book_example_and_label_forms():
    expected = -np.log(0.6)
    assert F.cross_entropy_error(BOOK_Y, BOOK_T) == pytest.approx(expected, rel=1e-12)
    assert F.cross_entropy_error(BOOK_Y, 2) == pytest.approx(expected, rel=1e-12)
    Y = np.stack([BOOK_Y, BOOK_Y[::-1]])
    onehot = np.eye(10)[[2, 7]]
    by_label = F.cross_entropy_error(Y, np.array([2, 7]))
    assert by_label == pytest.approx(-np.log(0.6), rel=1e-12)
    assert F.cross_entropy_error(Y, onehot) == pytest.approx(by_label, rel=1e-12)
    assert F.cross_entropy_error(Y, onehot.astype(np.int64)) == pytest.approx(by_label, rel=1e-12)


def test_cross_entropy_not_capped():
    # A confident wrong prediction: logits [0, 100], label 0.  The book's
    # -log(y + 1e-7) would say 16.1; the true loss is 100.
    y = F.softmax(np.array([0.0, 100.0]))
    assert F.cross_entropy_error(y, 0) == pytest.approx(100.0, rel=1e-9)
    assert F.cross_entropy_error(np.array([0.0, 1.0]), 0) == np.inf
    # zero probability on a class with zero target weight costs nothing
    assert F.cross_entropy_error(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_loss_from_logits(dtype):
    assert F.softmax_loss(np.array([0.0, 100.0], dtype=dtype), 0) == pytest.approx(100.0, rel=1e-6)
    X = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]], dtype=dtype)
    t = np.array([2, 0])
    assert F.softmax_loss(X, t) == pytest.approx(F.cross_entropy_error(F.softmax(X.astype(np.float64)), t))
    assert F.softmax_loss(X, np.eye(3)[t]) == pytest.approx(F.softmax_loss(X, t))


@pytest.mark.parametrize("bad", [10, -1])
def test_labels_out_of_range(bad):
    Y = np.full((2, 10), 0.1)
    with pytest.raises(IndexError, match="out of range"):
        F.cross_entropy_error(Y, np.array([1, bad]))
    with pytest.raises(IndexError, match="out of range"):
        F.softmax_loss(Y, np.array([bad, 1]))


def test_bad_targets():
    with pytest.raises(ValueError):
        F.cross_entropy_error(np.full((2, 3), 1 / 3), np.array([0, 1, 2]))
    with pytest.raises(ValueError):
        F.cross_entropy_error(np.full((2, 3), 1 / 3), np.ones((2, 4)))
    with pytest.raises(TypeError):
        F.cross_entropy_error(np.full((2, 3), 1 / 3), np.array([True, False]))
    with pytest.raises(ValueError):
        F.sum_squared_error(np.ones(3), np.ones(4))
