"""Bad input to the book's networks is refused clearly (issue 20): exception type and argument name.

One test body per backend (the ``backend`` fixture): every model's forward runs kernels.
"""
import copy
import pickle

import numpy as np
import pytest

import fastdl
from fastdl import ops
from fastdl.models import DeepConvNet, MultiLayerNetExtend, SimpleConvNet, TwoLayerNet

RNG = np.random.default_rng(2020)
K = 3  # classes of every model below


def _two_layer():
    return TwoLayerNet(12, 5, K, seed=0), (12,)


def _extend():
    return MultiLayerNetExtend(12, [6, 5], K, use_dropout=True, use_batchnorm=True, seed=0), (12,)


def _simple_conv():
    return SimpleConvNet((1, 8, 8), {"filter_num": 2, "filter_size": 3}, 5, K, seed=0), (1, 8, 8)


def _deep_conv():
    cp = {"filter_num": 2, "filter_size": 3, "pad": 1, "stride": 1}
    return DeepConvNet((1, 8, 8), *[cp] * 6, hidden_size=4, output_size=K, seed=0), (1, 8, 8)


MODELS = {"TwoLayerNet": _two_layer, "MultiLayerNetExtend": _extend, "SimpleConvNet": _simple_conv,
          "DeepConvNet": _deep_conv}


def _batch(sample, n=4):
    return RNG.standard_normal((n,) + sample).astype(np.float32), np.arange(n) % K


def _entry_points(net, x, t):
    """Every public entry point that takes x, as (name, call)."""
    return [("predict", lambda: net.predict(x)),
            ("predict(train_flg=True)", lambda: net.predict(x, train_flg=True)),
            ("loss", lambda: net.loss(x, t)),
            ("gradient", lambda: net.gradient(x, t)),
            ("accuracy", lambda: net.accuracy(x, t))]


@pytest.mark.parametrize("name", list(MODELS))
def test_wrong_input_shape_names_x_and_the_expected_shape(backend, name):
    net, sample = MODELS[name]()
    d = int(np.prod(sample))
    expected = r"\(N, 12\)" if len(sample) == 1 else r"\(N, 1, 8, 8\) or flat \(N, 64\)"
    bad = [(4, d + 1), (4, d - 1), (d,), ()]  # (N, ...) of d values is a batch for the MLPs, as Affine takes it
    if len(sample) == 3:
        bad += [(4, 2, 8, 8), (4, 1, 8, 9), (4, 1, 64), (4, 8, 8)]
    for shape in bad:
        x, t = np.ones(shape, np.float32), np.arange(4) % K
        for entry, call in _entry_points(net, x, t):
            with pytest.raises(ValueError, match=rf"{name}(\.accuracy)?: x must have shape {expected}") as exc:
                call()
            assert str(shape).replace(" ", "") in str(exc.value).replace(" ", ""), (entry, exc.value)
    with pytest.raises(ValueError, match=r"one sample\? use x\[None\]"):
        net.predict(np.ones(d, np.float32))


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, np.bool_, object, str])
def test_complex_bool_object_x_is_a_type_error_not_a_cast(backend, name, dtype):
    net, sample = MODELS[name]()
    x, t = _batch(sample)
    bad = x.astype(dtype) if dtype is not str else x.astype(str)
    for entry, call in _entry_points(net, bad, t):
        with pytest.raises(TypeError, match=rf"{name}(\.accuracy)?: x must be real numbers .*got dtype"):
            call()
    # integer input is real: cast to the model's dtype as before
    assert net.predict(np.ones((2,) + sample, np.int64)).dtype == net.dtype


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("train_flg", [False, True])
def test_empty_batch_gives_empty_scores(backend, name, train_flg):
    net, sample = MODELS[name]()
    shapes = [(0,) + sample] + ([(0, int(np.prod(sample)))] if len(sample) == 3 else [])
    for shape in shapes:
        for dtype in (np.float32, np.float64, np.uint8):
            y = net.predict(np.zeros(shape, dtype), train_flg=train_flg)
            assert y.shape == (0, K) and y.dtype == net.dtype, (shape, dtype)
    x, t = _batch(sample)
    np.testing.assert_array_equal(net.predict(x).shape, (4, K))  # and a real batch still works
    with pytest.raises(ValueError, match=rf"{name}\.accuracy: x is an empty batch"):
        net.accuracy(np.zeros((0,) + sample), np.zeros(0, int))


@pytest.mark.parametrize("name", ["TwoLayerNet", "SimpleConvNet"])
def test_accuracy_checks_labels_as_loss_does(backend, name):
    net, sample = MODELS[name]()
    x, t = _batch(sample)
    cases = [  # (t, exception, message) -- loss raises the same exception for each
        (np.array([0, 1, K, 0]), IndexError, rf"label {K} out of range \[0, {K}\)"),
        (np.array([0, -1, 1, 0]), IndexError, rf"label -1 out of range \[0, {K}\)"),
        (np.array([0, 1, 2, 0], np.uint8) + 250, IndexError, r"label 250 out of range"),
        (np.array([0.5, 1.0, 2.0, 0.0]), ValueError, r"t must have .*\(4, 3\).*fractional labels"),
        (np.array([0.0, 1.0, 2.0, 0.0]), ValueError, r"t must have .*\(4, 3\)"),
        (np.eye(K + 1)[[0, 1, 2, 0]], ValueError, r"one-hot targets t must have .*\(4, 3\), got \(4, 4\)"),
        (np.eye(K - 1)[[0, 1, 1, 0]], ValueError, r"one-hot targets t must have .*\(4, 3\), got \(4, 2\)"),
        (np.array([0, 1, 2]), ValueError, r"integer labels t must have shape \(4,\), got \(3,\)"),
        (np.array([0, 1, 2, 0, 1]), ValueError, r"integer labels t must have shape \(4,\)"),
        (np.array([True, False, True, False]), TypeError, r"\bt must be .*dtype"),
        (np.array([0, 1, 2, 0], complex), TypeError, r"\bt must be .*dtype"),
        (np.array(["0", "1", "2", "0"]), TypeError, r"\bt must be .*dtype"),
    ]
    for bad, exc, match in cases:
        with pytest.raises(exc, match=rf"{name}\.accuracy: .*{match}"):
            net.accuracy(x, bad)
        with pytest.raises(exc, match=match):
            net.loss(x, bad)
    # what loss accepts, accuracy accepts: labels (N,), (N, 1) as in the book, one-hot float or int
    want = net.accuracy(x, t)
    for good in (t, t.astype(np.uint8), t.reshape(4, 1), np.eye(K)[t], np.eye(K, dtype=int)[t]):
        assert net.accuracy(x, good, batch_size=3) == want
        assert np.isfinite(net.loss(x, good))


def test_accuracy_batch_size_is_an_int_at_least_1():
    net, sample = _two_layer()
    x, t = _batch(sample)
    for bad in ("10", 2.5, None, True):
        with pytest.raises(TypeError, match="batch_size must be an int"):
            net.accuracy(x, t, batch_size=bad)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="batch_size must be >= 1"):
            net.accuracy(x, t, batch_size=bad)
    assert net.accuracy(x, t, batch_size=np.int64(3)) == net.accuracy(x, t)


@pytest.mark.parametrize("name", list(MODELS))
def test_deepcopy_and_pickle_after_a_forward_pass(backend, name):
    net, sample = MODELS[name]()
    x, t = _batch(sample)
    for fusion in (True, False):
        with _fusion(fusion):
            loss, grads = net.loss_and_gradient(x, t)  # layers now hold forward contexts
            for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
                np.testing.assert_array_equal(clone.predict(x), net.predict(x))
                if name not in ("MultiLayerNetExtend", "DeepConvNet"):  # (dropout draws new masks)
                    closs, cgrads = clone.loss_and_gradient(x, t)
                    assert closs == loss
                    for k in grads:
                        np.testing.assert_array_equal(cgrads[k], grads[k])
                # the copy's layers hold its own parameters: an update of the copy stays there
                before = net.predict(x)
                for p in clone.params.values():
                    p[...] = 0
                np.testing.assert_array_equal(net.predict(x), before)
                np.testing.assert_array_equal(clone.predict(x), np.zeros((4, K)))


class _fusion:
    """``fastdl.set_fusion(on)`` for a block, restored afterwards."""

    def __init__(self, on):
        self.on = on

    def __enter__(self):
        self.old = fastdl.fusion_enabled()
        fastdl.set_fusion(self.on)

    def __exit__(self, *exc):
        fastdl.set_fusion(self.old)


def test_conv_and_pool_contexts_copy_and_pickle_by_backend_name(backend):
    x = RNG.standard_normal((2, 3, 6, 6))
    W = RNG.standard_normal((4, 3, 3, 3))
    dy = RNG.standard_normal((2, 4, 4, 4))
    y, ctx = ops.conv2d_forward(x, W, None, 1, 0)
    want = ops.conv2d_backward(dy, ctx)
    for clone in (copy.deepcopy(ctx), pickle.loads(pickle.dumps(ctx))):
        assert clone.backend is ctx.backend and clone.y_shape == ctx.y_shape and clone.dtype == ctx.dtype
        for a, b in zip(ops.conv2d_backward(dy, clone), want):
            np.testing.assert_array_equal(a, b)
    assert pickle.loads(pickle.dumps(ctx)).__getstate__()["backend"] == backend
    y, pctx = ops.relu_maxpool2d_forward(x, 2, 2, 2, 0)
    dyp = RNG.standard_normal(y.shape)
    np.testing.assert_array_equal(ops.relu_maxpool2d_backward(dyp, copy.deepcopy(pctx)),
                                  ops.relu_maxpool2d_backward(dyp, pctx))
