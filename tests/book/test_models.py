"""The book's networks: architecture, dtype, backprop vs numerical gradients, config, state."""
import json

import numpy as np
import pytest

from fastdl.gradient import gradient_check, numerical_gradient
from fastdl.layers import Dropout
from fastdl.models import (MODELS, DeepConvNet, MultiLayerNet, MultiLayerNetExtend, SimpleConvNet,
                           TwoLayerNet, build_model)


def data(shape, classes, n, seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, *shape)), r.integers(0, classes, n)


def tiny_convnet(**kw):
    return SimpleConvNet(input_dim=(2, 6, 6), conv_param={"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1},
                         hidden_size=5, output_size=4, weight_init_std=0.3, **kw)


# ----------------------------------------------------------------- architecture

def test_book_architectures():
    s = SimpleConvNet(seed=0)
    assert {k: v.shape for k, v in s.params.items()} == {
        "W1": (30, 1, 5, 5), "b1": (30,), "W2": (4320, 100), "b2": (100,), "W3": (100, 10), "b3": (10,)}
    assert s.layers["Conv1"].need_dx is False
    d = DeepConvNet(seed=0)
    shapes = {k: v.shape for k, v in d.params.items()}
    assert shapes["W4"] == (32, 32, 3, 3) and d.layers["Conv4"].pad == 2
    assert shapes["W7"] == (1024, 50) and shapes["W8"] == (50, 10) and len(shapes) == 16
    assert [d.layers[f"Conv{i}"].need_dx for i in range(1, 7)] == [False] + [True] * 5
    assert sum(isinstance(layer, Dropout) for layer in d.layers.values()) == 2
    m = MultiLayerNetExtend(784, [100, 100], 10, use_batchnorm=True, use_dropout=True)
    assert list(m.layers) == ["Affine1", "BatchNorm1", "Activation_function1", "Dropout1",
                              "Affine2", "BatchNorm2", "Activation_function2", "Dropout2", "Affine3"]
    assert set(m.params) == {"W1", "b1", "W2", "b2", "W3", "b3", "gamma1", "beta1", "gamma2", "beta2"}
    t = TwoLayerNet(784, 50, 10, seed=0)
    assert t.params["W1"].shape == (784, 50)
    assert abs(t.params["W1"].std() - 0.01) < 0.001


def test_weight_init_scales():
    he = MultiLayerNet(1000, [1000], 10, weight_init_std="relu", seed=0).params["W1"].std()
    xavier = MultiLayerNet(1000, [1000], 10, weight_init_std="xavier", seed=0).params["W1"].std()
    fixed = MultiLayerNet(1000, [1000], 10, weight_init_std=0.05, seed=0).params["W1"].std()
    assert he == pytest.approx(np.sqrt(2 / 1000), rel=0.02)
    assert xavier == pytest.approx(np.sqrt(1 / 1000), rel=0.02)
    assert fixed == pytest.approx(0.05, rel=0.02)
    deep = DeepConvNet(seed=0).params["W6"].std()
    assert deep == pytest.approx(np.sqrt(2 / (64 * 9)), rel=0.05)


def test_dtype_and_input_cast(backend):
    x, t = data((1, 6, 6), 4, 3)
    for dtype in (np.float32, np.float64):
        net = tiny_convnet(dtype=dtype, seed=0)
        assert all(p.dtype == dtype for p in net.params.values())
        y = net.predict(x.astype(np.float64 if dtype == np.float32 else np.float32).repeat(2, axis=1))
        assert y.dtype == dtype and y.shape == (3, 4)
        grads = net.gradient(x.repeat(2, axis=1), t)
        assert set(grads) == set(net.params)
        assert all(grads[k].dtype == dtype and grads[k].shape == net.params[k].shape for k in grads)
    assert SimpleConvNet().dtype == np.float32
    with pytest.raises(TypeError):
        TwoLayerNet(2, 3, 2, dtype=np.float16)


def test_flat_images_for_convnets():
    net = tiny_convnet(seed=0, dtype=np.float64)
    x, _ = data((2, 6, 6), 4, 3)
    np.testing.assert_array_equal(net.predict(x.reshape(3, -1)), net.predict(x))


def test_seed_reproducible():
    a, b, c = (MultiLayerNetExtend(5, [4], 3, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.params["W1"], b.params["W1"])
    assert not np.array_equal(a.params["W1"], c.params["W1"])


# ----------------------------------------------------------------- gradients (float64)

def test_two_layer_net_gradient():
    x, t = data((4,), 3, 5)
    net = TwoLayerNet(4, 6, 3, weight_init_std=0.5, dtype=np.float64, seed=0)
    errors = gradient_check(net, x, t)
    assert max(errors.values()) < 1e-5, errors
    num = net.numerical_gradient(x, t)
    grads = net.gradient(x, t)
    for k in net.params:
        np.testing.assert_allclose(grads[k], num[k], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("use_batchnorm", [False, True])
def test_multi_layer_net_extend_gradient(activation, use_batchnorm):
    x, t = data((4,), 3, 6)
    net = MultiLayerNetExtend(4, [5, 4], 3, activation=activation, weight_init_std=0.8,
                              weight_decay_lambda=0.1, use_batchnorm=use_batchnorm, dtype=np.float64, seed=0)
    errors = gradient_check(net, x, t)
    assert max(errors.values()) < 1e-5, errors


def test_multi_layer_net_gradient_one_hot():
    x, t = data((4,), 3, 6)
    net = MultiLayerNet(4, [5], 3, activation="sigmoid", weight_init_std="sigmoid", dtype=np.float64, seed=0)
    assert max(gradient_check(net, x, np.eye(3)[t]).values()) < 1e-5


def test_simple_convnet_gradient(backend):
    x, t = data((2, 6, 6), 4, 3)
    net = tiny_convnet(dtype=np.float64, seed=0)
    errors = gradient_check(net, x, t)
    assert max(errors.values()) < 1e-5, errors


def test_deep_convnet_gradient_sampled(backend):
    # Dropout off (ratio 0 keeps every unit), 8x8 input; check 4 random entries per parameter.
    net = DeepConvNet(input_dim=(1, 8, 8), hidden_size=6, output_size=3, dtype=np.float64, seed=0)
    for layer in net.layers.values():
        if isinstance(layer, Dropout):
            layer.dropout_ratio = 0.0
    x, t = data((1, 8, 8), 3, 2)
    grads = net.gradient(x, t)
    r = np.random.default_rng(5)
    for key, p in net.params.items():
        for flat in r.choice(p.size, size=min(4, p.size), replace=False):
            idx = np.unravel_index(flat, p.shape)
            view = p[idx[:-1]] if p.ndim > 1 else p
            sub = view[idx[-1]:idx[-1] + 1]  # a 1-element view into the parameter
            num = numerical_gradient(lambda _: net.loss(x, t, train_flg=True), sub)[0]
            assert grads[key][idx] == pytest.approx(num, rel=1e-4, abs=1e-8), (key, idx)


def test_weight_decay_in_loss_and_gradient():
    x, t = data((4,), 3, 5)
    a = MultiLayerNet(4, [5], 3, dtype=np.float64, seed=0)
    b = MultiLayerNet(4, [5], 3, weight_decay_lambda=0.3, dtype=np.float64, seed=0)
    penalty = 0.5 * 0.3 * sum(np.sum(b.params[k] ** 2) for k in ("W1", "W2"))
    assert b.loss(x, t) == pytest.approx(a.loss(x, t) + penalty)
    ga, gb = a.gradient(x, t), b.gradient(x, t)
    np.testing.assert_allclose(gb["W1"], ga["W1"] + 0.3 * b.params["W1"])
    np.testing.assert_allclose(gb["b1"], ga["b1"])


def test_loss_and_gradient_matches():
    x, t = data((4,), 3, 5)
    net = TwoLayerNet(4, 6, 3, dtype=np.float64, seed=0)
    loss, grads = net.loss_and_gradient(x, t)
    assert isinstance(loss, float) and loss == pytest.approx(net.loss(x, t))
    np.testing.assert_array_equal(net.last_layer.x, net.predict(x))


# ----------------------------------------------------------------- accuracy, config, state

def test_accuracy_counts_last_partial_batch():
    x, t = data((4,), 3, 7)
    net = TwoLayerNet(4, 6, 3, weight_init_std=1.0, dtype=np.float64, seed=0)
    expected = np.mean(np.argmax(net.predict(x), axis=1) == t)
    assert net.accuracy(x, t, batch_size=3) == pytest.approx(expected)
    assert net.accuracy(x, np.eye(3)[t], batch_size=100) == pytest.approx(expected)
    with pytest.raises(ValueError):
        net.accuracy(x, t[:5])


def test_config_rebuilds_model():
    nets = [TwoLayerNet(4, 6, 3, seed=0), MultiLayerNet(4, [5, 5], 3, activation="sigmoid", seed=1),
            MultiLayerNetExtend(4, [5], 3, use_dropout=True, dropout_ration=0.2, use_batchnorm=True, seed=2),
            tiny_convnet(seed=3, dtype=np.float64),
            DeepConvNet(input_dim=(1, 8, 8), hidden_size=6, output_size=3, seed=4)]
    assert sorted(MODELS) == ["deep_convnet", "multi_layer", "multi_layer_extend", "simple_convnet", "two_layer"]
    for net in nets:
        cfg = json.loads(json.dumps(net.config()))
        twin = build_model(net.name, **cfg)
        assert type(twin) is type(net) and twin.dtype == net.dtype
        for k, v in net.params.items():
            np.testing.assert_array_equal(twin.params[k], v)  # same seed, same weights
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet")


def test_batchnorm_running_stats_in_state():
    x, t = data((4,), 3, 8)
    net = MultiLayerNetExtend(4, [5], 3, use_batchnorm=True, dtype=np.float64, seed=0)
    state0 = net.state_dict()
    assert {"running_mean1", "running_var1"} <= set(state0)
    net.gradient(x, t)
    moved = net.state_dict()
    assert not np.array_equal(moved["running_mean1"], state0["running_mean1"])
    y_trained = net.predict(x)
    net.load_state_dict(state0)
    np.testing.assert_array_equal(net.state_dict()["running_mean1"], state0["running_mean1"])
    net.load_state_dict(moved)
    np.testing.assert_array_equal(net.predict(x), y_trained)


def test_optimizer_updates_reach_layers():
    from fastdl.optimizers import SGD
    x, t = data((4,), 3, 8)
    net = TwoLayerNet(4, 6, 3, weight_init_std=0.5, dtype=np.float64, seed=0)
    before = net.loss(x, t)
    opt = SGD(lr=0.5)
    for _ in range(20):
        opt.update(net.params, net.gradient(x, t))
    assert net.loss(x, t) < before
    assert net.layers["Affine1"].W is net.params["W1"]


def test_inputs_not_mutated(backend):
    x, t = data((2, 6, 6), 4, 3)
    x = x.astype(np.float32)
    x.setflags(write=False)
    t.setflags(write=False)
    x_before = x.copy()
    net = tiny_convnet(seed=0)
    net.gradient(x, t)
    net.accuracy(x, t)
    np.testing.assert_array_equal(x, x_before)
