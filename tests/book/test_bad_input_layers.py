"""Bad input to layers and optimizers is refused clearly (issue 20): exception type and argument name.

One test body per backend (the ``backend`` fixture) wherever a layer or optimizer runs a kernel.
"""
import numpy as np
import pytest

from fastdl.layers import (Affine, BatchNormalization, Convolution, Dropout, Pooling, Relu, Sigmoid,
                           SoftmaxWithLoss)
from fastdl.optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, Nesterov2016, RMSprop

RNG = np.random.default_rng(20)


def _affine():
    return Affine(RNG.standard_normal((6, 3)), np.zeros(3)), lambda l: l.forward(RNG.standard_normal((4, 6)))


def _bn():
    return BatchNormalization(np.ones(6), np.zeros(6)), lambda l: l.forward(RNG.standard_normal((4, 6)))


def _conv():
    return (Convolution(RNG.standard_normal((2, 1, 3, 3)), np.zeros(2)),
            lambda l: l.forward(RNG.standard_normal((2, 1, 5, 5))))


def _pool():
    return Pooling(2, 2), lambda l: l.forward(RNG.standard_normal((2, 1, 4, 4)))


def _softmax():
    return SoftmaxWithLoss(), lambda l: l.forward(RNG.standard_normal((4, 3)), np.array([0, 1, 2, 0]))


def _simple(cls):
    return lambda: (cls(), lambda l: l.forward(RNG.standard_normal((4, 6))))


LAYERS = {
    "Sigmoid": _simple(Sigmoid),
    "Relu": _simple(Relu),
    "Dropout": _simple(Dropout),
    "BatchNormalization": _bn,
    "Affine": _affine,
    "SoftmaxWithLoss": _softmax,
    "Convolution": _conv,
    "Pooling": _pool,
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_backward_before_forward_says_so(backend, name):
    layer, _ = LAYERS[name]()
    with pytest.raises(RuntimeError, match=rf"{name}\.backward called before .*forward"):
        layer.backward(np.ones((4, 3)))


@pytest.mark.parametrize("name", list(LAYERS))
def test_dout_of_the_wrong_shape_is_refused(backend, name):
    layer, forward = LAYERS[name]()
    out = forward(layer)
    shape = np.shape(out)
    bad = [(4, 7), (1,), shape + (1,)] if shape else [(1,), (4, 3)]
    for s in bad:
        with pytest.raises(ValueError, match=rf"{name}\.backward: dout must have the shape"):
            layer.backward(np.ones(s))
    if shape:  # broadcastable shapes are refused too (Sigmoid, Dropout, BN used to broadcast them)
        with pytest.raises(ValueError, match="dout"):
            layer.backward(np.ones(shape[-1]))
        dx = layer.backward(np.ones(shape))  # and the right shape still works
    else:
        dx = layer.backward(1.0)
    assert dx is None or dx.ndim >= 2


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype", [np.complex128, np.bool_, object])
def test_complex_bool_object_input_is_a_type_error(backend, name, dtype):
    layer, forward = LAYERS[name]()
    shapes = {"Convolution": (2, 1, 5, 5), "Pooling": (2, 1, 4, 4), "SoftmaxWithLoss": (4, 3)}
    x = np.ones(shapes.get(name, (4, 6))).astype(dtype)
    with pytest.raises(TypeError, match=rf"{name}.*x must be real"):
        if name == "SoftmaxWithLoss":
            layer.forward(x, np.array([0, 1, 2, 0]))
        else:
            layer.forward(x)
    forward(layer)
    shape = np.shape(layer.forward(*((RNG.standard_normal((4, 3)), np.array([0, 1, 2, 0]))
                                     if name == "SoftmaxWithLoss" else (RNG.standard_normal(shapes.get(name, (4, 6))),))))
    with pytest.raises(TypeError, match=rf"{name}.*dout must be real"):
        layer.backward(np.ones(shape).astype(dtype))


def test_affine_empty_batch(backend):
    W, b = RNG.standard_normal((12, 3)), RNG.standard_normal(3)
    layer = Affine(W, b)
    out = layer.forward(np.zeros((0, 3, 4)))  # (N, ...) with N = 0: reshape with x.shape[0], not 0/-1
    assert out.shape == (0, 3) and out.dtype == np.float64
    dx = layer.backward(np.zeros((0, 3)))
    assert dx.shape == (0, 3, 4)
    np.testing.assert_array_equal(layer.dW, np.zeros((12, 3)))
    np.testing.assert_array_equal(layer.db, np.zeros(3))
    with pytest.raises(ValueError, match="12 features"):
        layer.forward(np.zeros((0, 5)))


@pytest.mark.parametrize("train_flg", [True, False])
def test_batch_norm_empty_batch(backend, train_flg):
    layer = BatchNormalization(np.ones(6), np.zeros(6))
    layer.forward(RNG.standard_normal((5, 2, 3)))  # running statistics exist
    mean, var = layer.running_mean.copy(), layer.running_var.copy()
    out = layer.forward(np.zeros((0, 2, 3)), train_flg=train_flg)
    assert out.shape == (0, 2, 3) and out.dtype == np.float64
    np.testing.assert_array_equal(layer.running_mean, mean)  # an empty batch teaches nothing
    np.testing.assert_array_equal(layer.running_var, var)
    if train_flg:
        dx = layer.backward(np.zeros((0, 2, 3)))
        assert dx.shape == (0, 2, 3)
        np.testing.assert_array_equal(layer.dgamma, np.zeros(6))
        np.testing.assert_array_equal(layer.dbeta, np.zeros(6))
    fresh = BatchNormalization(np.ones(6, np.float32), np.zeros(6, np.float32))
    assert fresh.forward(np.zeros((0, 6), np.float32), train_flg=train_flg).shape == (0, 6)


def test_batch_norm_backward_needs_a_training_forward():
    layer = BatchNormalization(np.ones(6), np.zeros(6))
    layer.forward(RNG.standard_normal((4, 6)), train_flg=False)
    with pytest.raises(RuntimeError, match="BatchNormalization.backward called before a training forward"):
        layer.backward(np.ones((4, 6)))


def test_dropout_ratio_type_and_range():
    with pytest.raises(TypeError, match="dropout_ratio"):
        Dropout('0.5')
    with pytest.raises(TypeError, match="dropout_ratio"):
        Dropout(True)
    with pytest.raises(ValueError, match="dropout_ratio"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="dropout_ratio"):
        Dropout(-0.1)
    assert Dropout(np.float32(0.25)).dropout_ratio == 0.25
    with pytest.raises(RuntimeError, match="training forward"):
        d = Dropout()
        d.forward(np.ones((2, 2)), train_flg=False)
        d.backward(np.ones((2, 2)))
    # integer input at inference is scaled, not rounded to 0
    np.testing.assert_array_equal(Dropout(0.5).forward(np.array([2, 4]), train_flg=False), [1.0, 2.0])


# ---------------------------------------------------------------- optimizers

OPTIMIZERS = [SGD, Momentum, Nesterov, Nesterov2016, AdaGrad, RMSprop, Adam]


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_numpy_scalar_lr_is_accepted(backend, cls):
    opt = cls(lr=np.float32(0.01))
    assert type(opt.lr) is float and opt.lr == pytest.approx(0.01)
    p = {"W": np.ones(3, np.float32)}
    opt.update(p, {"W": np.ones(3, np.float32)})
    assert p["W"].dtype == np.float32 and (p["W"] < 1).all()
    assert cls(lr=np.int64(1)).lr == 1.0


def _stepped(cls):
    opt = cls(lr=0.1)
    params = {"W": np.ones((2, 3)), "b": np.ones(3), "c": np.ones(2)}
    opt.update(params, {k: np.full(v.shape, 0.5) for k, v in params.items()})  # slots exist
    return opt, params


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_update_is_all_or_nothing(backend, cls):
    opt, params = _stepped(cls)
    before = {k: v.copy() for k, v in params.items()}
    state = opt.state_dict()
    good = {k: np.full(v.shape, 0.25) for k, v in params.items()}
    missing = {k: good[k] for k in ("W", "b")}  # no gradient for the last parameter
    wrong_shape = dict(good, b=np.ones(4))  # the second parameter's gradient is wrong
    complex_grad = dict(good, c=np.ones(2, complex))
    for grads, exc, match in ((missing, ValueError, "'c'"), (wrong_shape, ValueError, "'b' has shape"),
                              (complex_grad, TypeError, "'c' must be real")):
        with pytest.raises(exc, match=match):
            opt.update(params, grads)
        for k in params:  # nothing was stepped
            np.testing.assert_array_equal(params[k], before[k])
        after = opt.state_dict()
        assert after["iter"] == state["iter"]
        for slot, arrays in after["slots"].items():
            for k, a in arrays.items():
                np.testing.assert_array_equal(a, state["slots"][slot][k])
    opt.update(params, good)  # and a good update still works
    assert not np.array_equal(params["c"], before["c"])


@pytest.mark.parametrize("cls,arg", [(Momentum, "momentum"), (Nesterov, "momentum"),
                                     (Nesterov2016, "momentum"), (RMSprop, "decay_rate"),
                                     (Adam, "beta1"), (Adam, "beta2")])
@pytest.mark.parametrize("value", [1.0, 1.5, -0.1, float("inf"), float("nan")])
def test_rates_outside_0_1_are_refused(cls, arg, value):
    with pytest.raises(ValueError, match=arg):
        cls(**{arg: value})
    assert getattr(cls(**{arg: 0.0}), arg) == 0.0


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_lr_negative_zero_or_not_a_number(cls):
    for bad in (-0.01, 0.0, -np.float32(1)):
        with pytest.raises(ValueError, match="lr must be > 0"):
            cls(lr=bad)
    for bad in ("0.01", None, True, [0.01]):
        with pytest.raises(TypeError, match="lr must be a real number"):
            cls(lr=bad)


def test_parameter_that_cannot_be_updated_in_place():
    with pytest.raises(TypeError, match="'W' must be a float array"):
        SGD().update({"W": np.ones(3, int)}, {"W": np.ones(3)})
    with pytest.raises(TypeError, match="'W'"):
        SGD().update({"W": "1.0"}, {"W": 1.0})
