"""The book's own calls (chapters 4-7), written out as the book's scripts make them (issue 19).

Each test names the book's script it follows.  The book's formulas are written out here
(``book_*`` helpers) and fastdl is compared with them step by step.
"""
from collections import OrderedDict

import numpy as np
import pytest

import fastdl
from fastdl.optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, Nesterov2016, RMSprop

# ---------------------------------------------------------------- the book's update rules
# common/optimizer.py of the book's repository (oreilly-japan/deep-learning-from-scratch,
# master 07b1161), written out as it stands there, comments dropped.


class BookSGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params.keys():
            params[key] -= self.lr * grads[key]


class BookMomentum:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {}
            for key, val in params.items():
                self.v[key] = np.zeros_like(val)

        for key in params.keys():
            self.v[key] = self.momentum*self.v[key] - self.lr*grads[key]
            params[key] += self.v[key]


class BookNesterov:
    """The book's Nesterov since its commit 89eadd0 "Fix Nesterov update function" (2021-01-18)."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {}
            for key, val in params.items():
                self.v[key] = np.zeros_like(val)

        for key in params.keys():
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]


class BookNesterov2016(BookNesterov):
    """The book's Nesterov from its first commit 0dda3d1 (2016) up to 89eadd0: velocity first."""

    def update(self, params, grads):
        if self.v is None:
            self.v = {}
            for key, val in params.items():
                self.v[key] = np.zeros_like(val)

        for key in params.keys():
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]


class BookAdaGrad:
    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = {}
            for key, val in params.items():
                self.h[key] = np.zeros_like(val)

        for key in params.keys():
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class BookRMSprop:
    def __init__(self, lr=0.01, decay_rate = 0.99):
        self.lr = lr
        self.decay_rate = decay_rate
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = {}
            for key, val in params.items():
                self.h[key] = np.zeros_like(val)

        for key in params.keys():
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class BookAdam:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        if self.m is None:
            self.m, self.v = {}, {}
            for key, val in params.items():
                self.m[key] = np.zeros_like(val)
                self.v[key] = np.zeros_like(val)

        self.iter += 1
        lr_t  = self.lr * np.sqrt(1.0 - self.beta2**self.iter) / (1.0 - self.beta1**self.iter)

        for key in params.keys():
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key]**2 - self.v[key])

            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)


# fastdl's class, the book's class, hyperparameters (not the defaults, so that they are passed on)
CASES = [
    (SGD, BookSGD, {"lr": 0.1}),
    (Momentum, BookMomentum, {"lr": 0.1, "momentum": 0.8}),
    (Nesterov, BookNesterov, {"lr": 0.1, "momentum": 0.8}),
    (Nesterov2016, BookNesterov2016, {"lr": 0.1, "momentum": 0.8}),
    (AdaGrad, BookAdaGrad, {"lr": 0.1}),
    (RMSprop, BookRMSprop, {"lr": 0.1, "decay_rate": 0.9}),
    (Adam, BookAdam, {"lr": 0.01, "beta1": 0.8, "beta2": 0.99}),
]
IDS = [c[0].__name__ for c in CASES]


@pytest.mark.parametrize("cls,book_cls,hp", CASES, ids=IDS)
def test_every_optimizer_follows_the_book_step_by_step(backend, cls, book_cls, hp):
    # The same six steps of the book's optimizer and of fastdl's, on float64 arrays, compared
    # after every step (fastdl's Adam runs the backend's fused kernel).
    rng = np.random.default_rng(19)
    params = {"W1": rng.standard_normal((4, 3)), "b1": rng.standard_normal(3)}
    book_params = {k: v.copy() for k, v in params.items()}
    optimizer, book_optimizer = cls(**hp), book_cls(**hp)
    for step in range(6):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        optimizer.update(params, grads)
        book_optimizer.update(book_params, grads)
        for k in params:
            np.testing.assert_allclose(params[k], book_params[k], rtol=1e-12, atol=1e-15,
                                       err_msg=f"{cls.__name__} step {step + 1} {k}")


def test_nesterov_one_step_both_forms_of_the_book():
    # p=1, g=1, lr=0.1, momentum=0.9.  The book's code since 89eadd0 (2021): p += 0.81 * v_old (0);
    # p -= 1.9 * 0.1 * 1 -> 0.81.  Its code before (2016-2020): v = -0.1 first, then
    # p += 0.81 * (-0.1); p -= 0.19 -> 0.729.  fastdl: Nesterov and Nesterov2016.
    for book_cls, expected in ((BookNesterov, 0.81), (BookNesterov2016, 0.729)):
        params = {"x": np.array([1.0])}
        book_cls(lr=0.1, momentum=0.9).update(params, {"x": np.array([1.0])})
        assert params["x"][0] == pytest.approx(expected, abs=1e-15)
    p = {"x": np.array([1.0])}
    Nesterov(lr=0.1, momentum=0.9).update(p, {"x": np.array([1.0])})
    assert p["x"][0] == pytest.approx(0.81, abs=1e-15)
    p = {"x": np.array([1.0])}
    Nesterov2016(lr=0.1, momentum=0.9).update(p, {"x": np.array([1.0])})
    assert p["x"][0] == pytest.approx(0.729, abs=1e-15)
    assert type(fastdl.optimizers.get_optimizer("nesterov")) is Nesterov
    assert type(fastdl.optimizers.get_optimizer("nesterov_2016")) is Nesterov2016


def f(x, y):
    """ch06/optimizer_compare_naive.py."""
    return x**2 / 20.0 + y**2


def df(x, y):
    """ch06/optimizer_compare_naive.py."""
    return x / 10.0, 2.0*y


def test_optimizer_compare_naive_python_floats(backend):
    # ch06/optimizer_compare_naive.py as the book writes it: params and grads are dicts of Python
    # floats; the same loop runs the book's optimizers alongside, and every point is compared.
    init_pos = (-7.0, 2.0)
    params = {}
    params['x'], params['y'] = init_pos[0], init_pos[1]
    grads = {}
    grads['x'], grads['y'] = 0, 0

    optimizers = OrderedDict()
    optimizers["SGD"] = SGD(lr=0.95)
    optimizers["Momentum"] = Momentum(lr=0.1)
    optimizers["AdaGrad"] = AdaGrad(lr=1.5)
    optimizers["Adam"] = Adam(lr=0.3)
    # beyond the book's four: the other optimizers take the same call
    optimizers["Nesterov"] = Nesterov(lr=0.1)
    optimizers["Nesterov2016"] = Nesterov2016(lr=0.1)
    optimizers["RMSprop"] = RMSprop(lr=0.1)
    book_optimizers = {"SGD": BookSGD(lr=0.95), "Momentum": BookMomentum(lr=0.1),
                       "AdaGrad": BookAdaGrad(lr=1.5), "Adam": BookAdam(lr=0.3),
                       "Nesterov": BookNesterov(lr=0.1), "Nesterov2016": BookNesterov2016(lr=0.1),
                       "RMSprop": BookRMSprop(lr=0.1)}

    for key in optimizers:
        optimizer = optimizers[key]
        x_history = []
        y_history = []
        params['x'], params['y'] = init_pos[0], init_pos[1]
        book_params, book_grads = {'x': init_pos[0], 'y': init_pos[1]}, {}

        for i in range(30):
            x_history.append(params['x'])
            y_history.append(params['y'])

            grads['x'], grads['y'] = df(params['x'], params['y'])
            optimizer.update(params, grads)

            book_grads['x'], book_grads['y'] = df(book_params['x'], book_params['y'])
            book_optimizers[key].update(book_params, book_grads)
            assert type(params['x']) is float and type(params['y']) is float, key
            assert params['x'] == pytest.approx(float(book_params['x']), rel=1e-12, abs=1e-14), (key, i)
            assert params['y'] == pytest.approx(float(book_params['y']), rel=1e-12, abs=1e-14), (key, i)
        assert len(x_history) == 30 and f(params['x'], params['y']) < f(*init_pos), key


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


def _numerical_gradient_no_batch(f, x):
    """ch04/gradient_2d.py, as the book writes it."""
    h = 1e-4  # 0.0001
    grad = np.zeros_like(x)

    for idx in range(x.size):
        tmp_val = x[idx]
        x[idx] = float(tmp_val) + h
        fxh1 = f(x)  # f(x+h)

        x[idx] = tmp_val - h
        fxh2 = f(x)  # f(x-h)
        grad[idx] = (fxh1 - fxh2) / (2*h)

        x[idx] = tmp_val

    return grad


def book_numerical_gradient(f, X):
    """ch04/gradient_2d.py, as the book writes it."""
    if X.ndim == 1:
        return _numerical_gradient_no_batch(f, X)
    else:
        grad = np.zeros_like(X)

        for idx, x in enumerate(X):
            grad[idx] = _numerical_gradient_no_batch(f, x)

        return grad


def function_2(x):
    """ch04/gradient_2d.py."""
    if x.ndim == 1:
        return np.sum(x**2)
    else:
        return np.sum(x**2, axis=1)


def test_gradient_2d_batch_of_points():
    # ch04/gradient_2d.py: numerical_gradient(function_2, np.array([X, Y]) ) on the grid's points.
    from fastdl.gradient import numerical_gradient
    x0 = np.arange(-2, 2.5, 0.25)
    x1 = np.arange(-2, 2.5, 0.25)
    X, Y = np.meshgrid(x0, x1)

    X = X.flatten()
    Y = Y.flatten()

    grad = numerical_gradient(function_2, np.array([X, Y]) )
    book_grad = book_numerical_gradient(function_2, np.array([X, Y]) )
    assert grad.shape == book_grad.shape == (2, X.size)
    np.testing.assert_array_equal(grad, book_grad)  # the same differences, row by row
    np.testing.assert_allclose(grad[0], 2 * X, atol=1e-6)
    np.testing.assert_allclose(grad[1], 2 * Y, atol=1e-6)
    # the book's text (4.4): numerical_gradient(function_2, np.array([3.0, 4.0])) -> array([6., 8.])
    np.testing.assert_allclose(numerical_gradient(function_2, np.array([3.0, 4.0])), [6.0, 8.0], atol=1e-6)
    # a function of the whole 2-D array (a weight matrix, as the networks') is not a batch
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(numerical_gradient(lambda a: np.sum(a) ** 2, W), np.full((2, 2), 20.0), rtol=1e-6)


def test_numerical_gradient_neither_scalar_nor_one_value_per_row():
    from fastdl.gradient import numerical_gradient
    with pytest.raises(ValueError, match="one value per row"):
        numerical_gradient(lambda a: a * 2, np.ones((2, 3)))
    with pytest.raises(ValueError, match="scalar"):
        numerical_gradient(lambda a: a * 2, np.ones(3))


def test_gradient_method_x_history():
    # ch04/gradient_method.py, whose own gradient_descent also returns the history for the plot:
    #     x, x_history = gradient_descent(function_2, init_x, lr=lr, step_num=step_num)
    # fastdl's gradient_descent returns x alone (as in the book's text, 4.4.1) unless asked
    # for the history with return_history=True.
    from fastdl.gradient import gradient_descent

    def function_2(x):
        return x[0]**2 + x[1]**2

    init_x = np.array([-3.0, 4.0])

    lr = 0.1
    step_num = 20
    x, x_history = gradient_descent(function_2, init_x, lr=lr, step_num=step_num, return_history=True)

    assert x_history.shape == (20, 2)
    np.testing.assert_array_equal(x_history[0], [-3.0, 4.0])  # before the first step, as the book's
    expected = np.array([-3.0, 4.0]) * 0.8 ** np.arange(20)[:, None]  # each step multiplies by 1 - 2*lr
    np.testing.assert_allclose(x_history, expected, rtol=1e-6)
    np.testing.assert_allclose(x, [-3.0 * 0.8 ** 20, 4.0 * 0.8 ** 20], rtol=1e-6)
    np.testing.assert_array_equal(init_x, [-3.0, 4.0])  # (the book's version moves init_x itself)
    # the plot: plt.plot( x_history[:,0], x_history[:,1], 'o')
    assert x_history[:, 0].shape == x_history[:, 1].shape == (20,)


def test_gradient_descent_as_in_the_books_text():
    # 4.4.1: the three calls of the text and the values it prints.
    from fastdl.gradient import gradient_descent

    def function_2(x):
        return x[0]**2 + x[1]**2

    init_x = np.array([-3.0, 4.0])
    np.testing.assert_allclose(gradient_descent(function_2, init_x=init_x, lr=0.1, step_num=100),
                               [-6.11110793e-10, 8.14814391e-10], rtol=1e-8)
    init_x = np.array([-3.0, 4.0])
    np.testing.assert_allclose(gradient_descent(function_2, init_x=init_x, lr=10.0, step_num=100),
                               [-2.58983747e+13, -1.29524862e+12], rtol=1e-8)
    init_x = np.array([-3.0, 4.0])
    np.testing.assert_allclose(gradient_descent(function_2, init_x=init_x, lr=1e-10, step_num=100),
                               [-2.99999994, 3.99999992], rtol=1e-8)


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
    # ch06/batch_norm_gradient_check.py as the book writes it (random data stands in for MNIST).
    # fastdl refuses batch norm on one sample in training on purpose (its variance is 0, every
    # output would be beta): every call of the script says so, naming the script and the fix.
    from fastdl.gradient import gradient_check
    from fastdl.models import MultiLayerNetExtend
    rng = np.random.default_rng(5)
    x_train = rng.random((10, 784))
    t_train = np.eye(10)[rng.integers(0, 10, 10)]

    network = MultiLayerNetExtend(input_size=784, hidden_size_list=[100, 100], output_size=10,
                                  use_batchnorm=True)

    x_batch = x_train[:1]
    t_batch = t_train[:1]

    book_usage_and_fix = r"batch_norm_gradient_check.*x_train\[:1\].*x_train\[:2\], t_train\[:2\]"
    with pytest.raises(ValueError, match=book_usage_and_fix):
        grad_backprop = network.gradient(x_batch, t_batch)
    with pytest.raises(ValueError, match=book_usage_and_fix):
        grad_numerical = network.numerical_gradient(x_batch, t_batch)
    with pytest.raises(ValueError, match=book_usage_and_fix):
        gradient_check(network, x_batch, t_batch)

    # the fix, in float64 (smaller layers for speed): the script's loop then prints small diffs
    network = MultiLayerNetExtend(input_size=784, hidden_size_list=[10, 10], output_size=10,
                                  use_batchnorm=True, dtype=np.float64, seed=0)
    x_batch = x_train[:2]
    t_batch = t_train[:2]
    grad_backprop = network.gradient(x_batch, t_batch)
    grad_numerical = network.numerical_gradient(x_batch, t_batch)
    for key in grad_numerical.keys():
        diff = np.average( np.abs(grad_backprop[key] - grad_numerical[key]) )
        assert diff < 1e-6, (key, diff)
    errors = gradient_check(network, x_batch, t_batch)
    assert set(errors) == set(network.params) and max(errors.values()) < 1e-4, errors


def test_deep_convnet_layers_by_index_as_the_books_list():
    # ch08/deep_convnet.py keeps its layers in a list: layers[0] is the first Convolution, and
    # gradient() reads self.layers[layer_idx].dW for layer_idx in (0, 2, 5, 7, 10, 12, 15, 18).
    from fastdl.layers import Affine, Convolution, Dropout, Pooling, Relu
    from fastdl.models import DeepConvNet
    network = DeepConvNet(seed=0)
    assert isinstance(network.layers[0], Convolution)
    assert network.layers[0] is network.layers["Conv1"]
    assert network.layers[0].W is network.params['W1']
    kinds = [Convolution, Relu, Convolution, Relu, Pooling] * 3 + [Affine, Relu, Dropout, Affine, Dropout]
    assert [type(network.layers[i]) for i in range(len(network.layers))] == kinds
    x = np.random.default_rng(0).random((2, 1, 28, 28)).astype(np.float32)
    grads = network.gradient(x, np.array([3, 7]))
    for i, layer_idx in enumerate((0, 2, 5, 7, 10, 12, 15, 18)):
        assert network.layers[layer_idx].W is network.params['W' + str(i+1)]
        np.testing.assert_array_equal(network.layers[layer_idx].dW, grads['W' + str(i+1)])
        np.testing.assert_array_equal(network.layers[layer_idx].db, grads['b' + str(i+1)])
    assert network.layers[-1] is network.layers["Dropout2"]
    assert network.layers[np.int64(4)] is network.layers["Pool1"]
    with pytest.raises(IndexError, match="20 layers"):
        network.layers[20]
    assert list(network.layers)[:3] == ["Conv1", "Relu1", "Conv2"]  # names stay the keys


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
