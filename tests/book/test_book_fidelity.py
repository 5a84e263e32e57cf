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


# ---------------------------------------------------------------- chapters 6-7: layers and models


def test_apply_filter_scalar_bias():
    # ch07/apply_filter.py: w = network.params['W1'][i]; b = 0; w = w.reshape(1, *w.shape);
    # conv_layer = Convolution(w, b); out = conv_layer.forward(img)
    from fastdl.layers import Convolution
    rng = np.random.default_rng(7)
    W1 = rng.standard_normal((30, 1, 5, 5)).astype(np.float32)
    img = rng.random((12, 14)).astype(np.float32)  # imread of a gray PNG gives float32 (H, W)
    img = img.reshape(1, 1, *img.shape)
    for i in range(3):
        w = W1[i]
        b = 0
        w = w.reshape(1, *w.shape)
        conv_layer = Convolution(w, b)
        out = conv_layer.forward(img)
        out = out.reshape(out.shape[2], out.shape[3])
        expected = np.array([[np.sum(img[0, 0, y:y + 5, x:x + 5] * w[0, 0]) for x in range(10)]
                             for y in range(8)])
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert conv_layer.b.shape == (1,) and conv_layer.b.dtype == np.float32
    conv_layer.backward(np.ones((1, 1, 8, 10), np.float32))
    assert conv_layer.db.shape == (1,)


def test_apply_filter_dtype_mixing_names_the_book_and_the_fix():
    # The book's trained weights are float64, imread's image float32: fastdl refuses to mix on purpose.
    from fastdl.layers import Convolution
    w = np.ones((1, 1, 5, 5))  # float64
    img = np.ones((1, 1, 8, 8), np.float32)
    conv_layer = Convolution(w, 0)
    with pytest.raises(TypeError, match=r"apply_filter.*astype"):
        conv_layer.forward(img)
    assert conv_layer.forward(img.astype(w.dtype)).shape == (1, 1, 4, 4)  # the fix the message names


def test_gradient_check_labels_of_shape_n_1(backend):
    # ch07/gradient_check.py: T = np.array([1]).reshape((1,1)) is the label 1 (the book's rule:
    # t is one-hot only when t.size == y.size).
    from fastdl.functions import cross_entropy_error, softmax
    from fastdl.layers import SoftmaxWithLoss
    from fastdl.models import SimpleConvNet
    network = SimpleConvNet(input_dim=(1, 10, 10),
                            conv_param={'filter_num': 10, 'filter_size': 3, 'pad': 0, 'stride': 1},
                            hidden_size=10, output_size=10, weight_init_std=0.01, seed=0)
    X = np.random.default_rng(0).random(100).reshape((1, 1, 10, 10))
    T = np.array([1]).reshape((1, 1))
    grad = network.gradient(X, T)
    same = network.gradient(X, np.array([1]))
    for key in grad:
        np.testing.assert_array_equal(grad[key], same[key])
    assert network.loss(X, T) == network.loss(X, np.array([1]))
    # the layer and the function directly, for a batch of 3
    x = np.random.default_rng(1).standard_normal((3, 4))
    t = np.array([[2], [0], [3]])
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, t)
    assert loss == pytest.approx(-np.mean(np.log(softmax(x)[[0, 1, 2], [2, 0, 3]])), rel=1e-12)
    assert cross_entropy_error(softmax(x), t) == pytest.approx(loss, rel=1e-12)
    # one class: (N, 1) has t.size == y.size, so it is one-hot, as in the book
    assert SoftmaxWithLoss().forward(np.zeros((2, 1)), np.ones((2, 1), int)) == pytest.approx(0.0)


def test_batch_norm_gradient_check_one_sample_names_the_book_and_the_fix():
    # ch06/batch_norm_gradient_check.py: x_batch = x_train[:1]; network.gradient(x_batch, t_batch)
    # (random data stands in for MNIST; smaller layers for speed)
    from fastdl.gradient import gradient_check
    from fastdl.models import MultiLayerNetExtend
    rng = np.random.default_rng(5)
    x_train = rng.random((10, 20))
    t_train = np.eye(10)[rng.integers(0, 10, 10)]
    network = MultiLayerNetExtend(input_size=20, hidden_size_list=[8, 8], output_size=10,
                                  use_batchnorm=True, dtype=np.float64, seed=0)
    x_batch = x_train[:1]
    t_batch = t_train[:1]
    with pytest.raises(ValueError, match=r"batch_norm_gradient_check.*x_train\[:2\]"):
        network.gradient(x_batch, t_batch)
    with pytest.raises(ValueError, match=r"at least 2 samples"):
        gradient_check(network, x_batch, t_batch)
    errors = gradient_check(network, x_train[:2], t_train[:2])  # the fix
    assert max(errors.values()) < 1e-4, errors


def test_np_random_seed_reproduces_init_and_dropout():
    # The book's scripts call np.random.seed(...) first; fastdl's defaults (no seed=) honour it.
    from fastdl.init import he_normal, normal
    from fastdl.layers import Dropout
    from fastdl.models import TwoLayerNet
    np.random.seed(42)
    a = TwoLayerNet(input_size=784, hidden_size=50, output_size=10)
    w = normal((3, 4), 0.01)
    np.random.seed(42)
    b = TwoLayerNet(input_size=784, hidden_size=50, output_size=10)
    assert np.array_equal(normal((3, 4), 0.01), w)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(he_normal((3, 4)), he_normal((3, 4)))  # still random between draws
    # Dropout draws the book's mask, np.random.rand(*x.shape) > dropout_ratio, from the global state
    x = np.ones((4, 6))
    np.random.seed(3)
    y = Dropout(0.5).forward(x)
    np.random.seed(3)
    book_mask = np.random.rand(*x.shape) > 0.5
    np.testing.assert_array_equal(y, x * book_mask)
    # an explicit rng= is independent of the global state
    np.random.seed(3)
    m1 = Dropout(0.5, rng=1).forward(x)
    np.random.seed(4)
    np.testing.assert_array_equal(Dropout(0.5, rng=1).forward(x), m1)
