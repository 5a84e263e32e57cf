"""The layer-sequence compiler (fastdl/models/_fuse.py): fused models equal unfused ones.

One body per backend, float32 and float64: SimpleConvNet and DeepConvNet give the same
loss and gradients with fusion on and off (two models built from one seed, so weights and
dropout masks agree), and the switch really changes the path (fused_counts), never the
book's layer sequence.  Bit for bit, except on cpp, whose ``Convolution -> Relu -> Pooling``
backward visits the pool's argmax cells only and sums in another order: there the gradients
agree to rounding (the relative tolerances below, against each gradient's largest value).
"""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl.layers import Convolution, Pooling, Relu
from fastdl.models import DeepConvNet, SimpleConvNet
from fastdl.models._fuse import ConvRelu, ConvReluPool, ReluPool, compile_layers, fused_counts

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture
def fusion():
    """Restores the process-wide switch after the test."""
    before = fastdl.fusion_enabled()
    yield fastdl.set_fusion
    fastdl.set_fusion(before)


def _nets(dtype):
    small = dict(input_dim=(1, 10, 10), hidden_size=8)
    return [
        ("simple", lambda: SimpleConvNet(conv_param={"filter_num": 5, "filter_size": 3, "pad": 1, "stride": 1},
                                         dtype=dtype, seed=3, **small)),
        ("deep", lambda: DeepConvNet(input_dim=(1, 12, 12), hidden_size=16, dtype=dtype, seed=4)),
    ]


def _loss_and_grads(make, fused, fusion, x, t):
    fusion(fused)
    before = sum(fused_counts().values())
    model = make()
    loss, grads = model.loss_and_gradient(x, t)
    ran = sum(fused_counts().values()) - before
    return loss, grads, ran


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("net", ["simple", "deep"])
@pytest.mark.parametrize("batch", [3, 1])
def test_fused_model_equals_unfused(backend, fusion, dtype, net, batch):
    make = dict(_nets(dtype))[net]
    shape = (batch, 1, 10, 10) if net == "simple" else (batch, 1, 12, 12)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    t = rng.integers(0, 10, batch)
    loss_f, grads_f, ran_f = _loss_and_grads(make, True, fusion, x, t)
    loss_u, grads_u, ran_u = _loss_and_grads(make, False, fusion, x, t)
    assert ran_f > 0 and ran_u == 0, "the switch must change the path"
    assert loss_f == loss_u  # the forward is bit for bit on every backend
    assert grads_f.keys() == grads_u.keys()
    for key in grads_f:
        if backend == "cpp":
            scale = float(np.abs(grads_u[key]).max()) or 1.0
            np.testing.assert_allclose(grads_f[key], grads_u[key], rtol=TOL[dtype], atol=TOL[dtype] * scale,
                                       err_msg=key)
        else:
            np.testing.assert_array_equal(grads_f[key], grads_u[key], err_msg=key)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_steps_on_an_empty_batch(backend, fusion, dtype):
    """Affine (the book helper's) does not take N = 0; the fused steps do."""
    rng = np.random.default_rng(1)
    conv = Convolution(rng.standard_normal((4, 2, 3, 3)).astype(dtype), np.zeros(4, dtype), 1, 1)
    conv2 = Convolution(rng.standard_normal((4, 4, 3, 3)).astype(dtype), np.zeros(4, dtype), 1, 1)
    seq = [conv, Relu(), Pooling(2, 2), conv2, Relu()]
    x = np.zeros((0, 2, 6, 6), dtype)
    for on in (True, False):
        fusion(on)
        steps = compile_layers(seq)
        y = x
        for s in steps:
            y = s.forward(y)
        assert y.shape == (0, 4, 3, 3) and y.dtype == dtype
        d = np.ones_like(y)
        for s in reversed(steps):
            d = s.backward(d)
        assert d.shape == x.shape and conv.dW.shape == (4, 2, 3, 3) and conv2.dW.shape == (4, 4, 3, 3)
        assert not conv.dW.any() and not conv2.db.any()


def test_compile_layers_groups_the_runs(fusion):
    conv = Convolution(np.zeros((2, 1, 3, 3)), np.zeros(2))
    seq = [conv, Relu(), Pooling(2, 2), conv, Relu(), Relu(), Pooling(2, 2), Relu()]
    fusion(True)
    steps = compile_layers(seq)
    assert [type(s) for s in steps] == [ConvReluPool, ConvRelu, ReluPool, Relu]
    fusion(False)
    assert compile_layers(seq) == seq


def test_a_subclass_is_left_alone(fusion):
    class MyRelu(Relu):
        pass

    conv = Convolution(np.zeros((2, 1, 3, 3)), np.zeros(2))
    fusion(True)
    assert [type(s) for s in compile_layers([conv, MyRelu()])] == [Convolution, MyRelu]


def test_deep_convnet_fuses_every_conv_relu(fusion):
    fusion(True)
    model = DeepConvNet(input_dim=(1, 12, 12), hidden_size=16, seed=0)
    x = np.zeros((1, 1, 12, 12), np.float32)

    def ran(run):
        before = fused_counts()
        run()
        after = fused_counts()
        return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}

    assert ran(lambda: model.loss(x, np.zeros(1, np.int64), train_flg=True)) == {"conv_relu": 3, "conv_relu_pool": 3}
    assert ran(lambda: model.predict(x)) == {"infer_conv_relu": 3, "infer_conv_relu_pool": 3, "infer_affine_relu": 1}
    assert [type(layer).__name__ for layer in model.layers.values()][:3] == ["Convolution", "Relu", "Convolution"]
