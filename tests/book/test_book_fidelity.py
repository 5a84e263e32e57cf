"""The book's own calls (chapters 4-7), written out as the book's scripts make them (issue 19).

Each test names the book's script it follows.  The book's formulas are written out here
(``book_*`` helpers) and fastdl is compared with them step by step.
"""
import math

import numpy as np
import pytest

import fastdl
from fastdl.optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, NesterovBengio, RMSprop

# ---------------------------------------------------------------- the book's update rules
# common/optimizer.py, written out: state is a dict, p and g are floats or float64 arrays.


def book_update(name, hp, state, p, g):
    """One step of the book's optimizer ``name`` on one parameter; returns the new p."""
    if name == "sgd":
        return p - hp["lr"] * g
    if name == "momentum":
        state["v"] = hp["momentum"] * state.get("v", 0 * p) - hp["lr"] * g
        return p + state["v"]
    if name == "nesterov":  # the book: velocity first, then p with the NEW velocity
        v = state.get("v", 0 * p) * hp["momentum"]
        v = v - hp["lr"] * g
        state["v"] = v
        p = p + hp["momentum"] * hp["momentum"] * v
        return p - (1 + hp["momentum"]) * hp["lr"] * g
    if name == "adagrad":
        state["h"] = state.get("h", 0 * p) + g * g
        return p - hp["lr"] * g / (np.sqrt(state["h"]) + 1e-7)
    if name == "rmsprop":
        h = state.get("h", 0 * p) * hp["decay_rate"]
        state["h"] = h + (1 - hp["decay_rate"]) * g * g
        return p - hp["lr"] * g / (np.sqrt(state["h"]) + 1e-7)
    if name == "adam":
        state["iter"] = it = state.get("iter", 0) + 1
        lr_t = hp["lr"] * np.sqrt(1.0 - hp["beta2"] ** it) / (1.0 - hp["beta1"] ** it)
        m, v = state.get("m", 0 * p), state.get("v", 0 * p)
        state["m"] = m = m + (1 - hp["beta1"]) * (g - m)
        state["v"] = v = v + (1 - hp["beta2"]) * (g ** 2 - v)
        return p - lr_t * m / (np.sqrt(v) + 1e-7)
    raise AssertionError(name)


CASES = [
    (SGD, "sgd", {"lr": 0.1}),
    (Momentum, "momentum", {"lr": 0.1, "momentum": 0.9}),
    (Nesterov, "nesterov", {"lr": 0.1, "momentum": 0.9}),
    (AdaGrad, "adagrad", {"lr": 0.1}),
    (RMSprop, "rmsprop", {"lr": 0.1, "decay_rate": 0.99}),
    (Adam, "adam", {"lr": 0.01, "beta1": 0.9, "beta2": 0.999}),
]


@pytest.mark.parametrize("cls,name,hp", CASES, ids=[c[1] for c in CASES])
def test_every_optimizer_follows_the_book_step_by_step(backend, cls, name, hp):
    rng = np.random.default_rng(19)
    params = {"W1": rng.standard_normal((4, 3)), "b1": rng.standard_normal(3)}
    book = {k: v.copy() for k, v in params.items()}
    book_state = {k: {} for k in params}
    opt = cls(**hp)
    for step in range(6):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        opt.update(params, grads)
        for k in book:
            book[k] = book_update(name, hp, book_state[k], book[k], grads[k])
            np.testing.assert_allclose(params[k], book[k], rtol=1e-12, atol=1e-15,
                                       err_msg=f"{name} step {step + 1} {k}")


def test_nesterov_is_the_books_and_the_papers_form_is_named():
    # The book (common/optimizer.py): v *= momentum; v -= lr*g; p += momentum**2 * v; p -= (1+momentum)*lr*g
    # from p=1, g=1, lr=0.1, momentum=0.9: v = -0.1, p = 1 - 0.081 - 0.19 = 0.729.
    p = {"x": np.array([1.0])}
    Nesterov(lr=0.1, momentum=0.9).update(p, {"x": np.array([1.0])})
    assert p["x"][0] == pytest.approx(0.729, abs=1e-15)
    # The form of arXiv 1212.0901 (old velocity in the p step) gives 0.81: offered under its own name.
    p = {"x": np.array([1.0])}
    NesterovBengio(lr=0.1, momentum=0.9).update(p, {"x": np.array([1.0])})
    assert p["x"][0] == pytest.approx(0.81, abs=1e-15)
    assert fastdl.optimizers.get_optimizer("nesterov").__class__ is Nesterov


def test_nesterov_bengio_step_by_step():
    lr, mu = 0.1, 0.9
    rng = np.random.default_rng(3)
    p = {"W": rng.standard_normal(5)}
    ref, v = p["W"].copy(), np.zeros(5)
    opt = NesterovBengio(lr=lr, momentum=mu)
    for _ in range(4):
        g = rng.standard_normal(5)
        opt.update(p, {"W": g})
        ref = ref + mu * mu * v - (1 + mu) * lr * g
        v = mu * v - lr * g
        np.testing.assert_allclose(p["W"], ref, rtol=1e-13)


def book_df(x, y):
    """ch06/optimizer_compare_naive.py: the gradient of x**2 / 20 + y**2."""
    return x / 10.0, 2.0 * y


@pytest.mark.parametrize("cls,name,hp", [
    (SGD, "sgd", {"lr": 0.95}),
    (Momentum, "momentum", {"lr": 0.1, "momentum": 0.9}),
    (AdaGrad, "adagrad", {"lr": 1.5}),
    (Adam, "adam", {"lr": 0.3, "beta1": 0.9, "beta2": 0.999}),
], ids=["sgd", "momentum", "adagrad", "adam"])
def test_optimizer_compare_naive_python_floats(backend, cls, name, hp):
    # ch06/optimizer_compare_naive.py: params and grads are dicts of Python floats.
    optimizer = cls(lr=hp["lr"])
    params = {}
    params["x"], params["y"] = -7.0, 2.0
    grads = {}
    book_x, book_y, sx, sy = -7.0, 2.0, {}, {}
    for _ in range(30):
        grads["x"], grads["y"] = book_df(params["x"], params["y"])
        optimizer.update(params, grads)
        gx, gy = book_df(book_x, book_y)
        book_x = book_update(name, hp, sx, book_x, gx)
        book_y = book_update(name, hp, sy, book_y, gy)
        assert type(params["x"]) is float and type(params["y"]) is float
        assert params["x"] == pytest.approx(book_x, rel=1e-12, abs=1e-14)
        assert params["y"] == pytest.approx(book_y, rel=1e-12, abs=1e-14)


def test_optimizers_take_numpy_scalars():
    # hyperparameters as NumPy scalars (e.g. read from an array of learning rates)
    for opt in (SGD(lr=np.float32(0.01)), Momentum(lr=np.float64(0.1), momentum=np.float32(0.5)),
                Adam(lr=np.float32(0.001), beta1=np.float64(0.9)), RMSprop(decay_rate=np.float32(0.9))):
        assert isinstance(opt.lr, float)
    # parameters as NumPy scalars keep their type
    params = {"x": np.float32(-7.0), "y": np.float64(2.0)}
    SGD(lr=0.5).update(params, {"x": np.float32(1.0), "y": 4.0})
    assert type(params["x"]) is np.float32 and params["x"] == np.float32(-7.5)
    assert type(params["y"]) is np.float64 and params["y"] == 0.0


# ---------------------------------------------------------------- chapter 4: gradients


def book_function_2(x):
    """ch04/gradient_2d.py: sum of squares of one point (1-D) or of each row (2-D)."""
    if x.ndim == 1:
        return np.sum(x ** 2)
    else:
        return np.sum(x ** 2, axis=1)


def test_gradient_2d_batch_of_points():
    # ch04/gradient_2d.py: the gradient at every grid point, the points as columns of [X, Y].
    from fastdl.gradient import numerical_gradient
    x0 = np.arange(-2, 2.5, 0.25)
    x1 = np.arange(-2, 2.5, 0.25)
    X, Y = np.meshgrid(x0, x1)
    X = X.flatten()
    Y = Y.flatten()
    grad = numerical_gradient(book_function_2, np.array([X, Y]))
    assert grad.shape == (2, X.size)
    np.testing.assert_allclose(grad[0], 2 * X, atol=1e-6)  # row i: the gradient at the point row i
    np.testing.assert_allclose(grad[1], 2 * Y, atol=1e-6)
    # a single point, and a function of the whole array, still work as before
    np.testing.assert_allclose(numerical_gradient(book_function_2, np.array([3.0, 4.0])), [6.0, 8.0], atol=1e-6)
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(numerical_gradient(lambda a: np.sum(a) ** 2, W), np.full((2, 2), 20.0), rtol=1e-6)


def test_numerical_gradient_neither_scalar_nor_one_value_per_row():
    from fastdl.gradient import numerical_gradient
    with pytest.raises(ValueError, match="one value per row"):
        numerical_gradient(lambda a: a * 2, np.ones((2, 3)))
    with pytest.raises(ValueError, match="scalar"):
        numerical_gradient(lambda a: a * 2, np.ones(3))


def book_function_2_method(x):
    """ch04/gradient_method.py."""
    return x[0] ** 2 + x[1] ** 2


def test_gradient_method_x_history():
    # ch04/gradient_method.py: x, x_history = gradient_descent(function_2, init_x, lr=lr, step_num=step_num)
    from fastdl.gradient import gradient_descent
    init_x = np.array([-3.0, 4.0])
    lr = 0.1
    step_num = 20
    x, x_history = gradient_descent(book_function_2_method, init_x, lr=lr, step_num=step_num,
                                    return_history=True)
    assert x_history.shape == (20, 2)
    np.testing.assert_array_equal(x_history[0], [-3.0, 4.0])  # before the first step
    expected = np.array([-3.0, 4.0]) * 0.8 ** np.arange(20)[:, None]  # each step multiplies by 1 - 2*lr
    np.testing.assert_allclose(x_history, expected, rtol=1e-6)
    np.testing.assert_allclose(x, [-3.0 * 0.8 ** 20, 4.0 * 0.8 ** 20], rtol=1e-6)
    np.testing.assert_allclose(x_history[:, 0], expected[:, 0], rtol=1e-6)  # the plot's x_history[:,0]
