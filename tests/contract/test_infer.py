"""Inference variants (issue 16): the forward values alone, equal to the training path's.

``conv2d_infer`` and ``maxpool2d_infer`` (with and without the fused ReLU) give the same
values as the training kernels on every backend, bit for bit, and keep nothing for a
backward; ``Model.predict`` (train_flg=False) runs them (counted) and equals the unfused
inference of the book's layers.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl import ops
from fastdl.models import DeepConvNet, SimpleConvNet
from fastdl.models._fuse import fused_counts

from test_fused import CONV_CASES, DTYPES, POOL_CASES, _x


@pytest.fixture
def fusion():
    before = fastdl.fusion_enabled()
    yield fastdl.set_fusion
    fastdl.set_fusion(before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_conv2d_infer_is_the_training_forward(backend, case, dtype, relu):
    N, C, H, W, FN, k, stride, pad = case
    x = _x((N, C, H, W), dtype, 1, strided=True)
    w, b = _x((FN, C, k, k), dtype, 2, False), _x((FN,), dtype, 3, False)
    y = ops.conv2d_infer(x, w, b, stride, pad, relu=relu)
    train = ops.conv2d_bias_relu_forward if relu else ops.conv2d_forward
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, train(x, w, b, stride, pad)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_maxpool2d_infer_is_the_training_forward(backend, case, dtype, relu):
    N, C, H, W, ph, pw, stride, pad = case
    x = _x((N, C, H, W), dtype, 5, strided=True)
    y = ops.maxpool2d_infer(x, ph, pw, stride, pad, relu=relu)
    train = ops.relu_maxpool2d_forward if relu else ops.maxpool2d_forward
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, train(x, ph, pw, stride, pad)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("net", ["simple", "deep"])
def test_predict_runs_the_inference_steps(backend, fusion, dtype, net):
    if net == "simple":
        make = lambda: SimpleConvNet(input_dim=(1, 10, 10), hidden_size=8, dtype=dtype, seed=3,  # noqa: E731
                                     conv_param={"filter_num": 5, "filter_size": 3, "pad": 1, "stride": 1})
        x = np.random.default_rng(0).standard_normal((3, 1, 10, 10)).astype(dtype)
    else:
        make = lambda: DeepConvNet(input_dim=(1, 12, 12), hidden_size=16, dtype=dtype, seed=4)  # noqa: E731
        x = np.random.default_rng(0).standard_normal((3, 1, 12, 12)).astype(dtype)
    fusion(False)
    want = make().predict(x)
    fusion(True)
    model = make()
    before = sum(v for k, v in fused_counts().items() if k.startswith("infer_"))
    got = model.predict(x)
    assert sum(v for k, v in fused_counts().items() if k.startswith("infer_")) > before
    np.testing.assert_array_equal(got, want)
    with pytest.raises(RuntimeError, match="inference"):
        model._steps[0].backward(np.zeros(1))
    loss, grads = model.loss_and_gradient(x, np.zeros(3, np.int64))  # training steps again
    assert np.isfinite(loss) and grads["W1"].shape == model.params["W1"].shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_predict_fuses_affine_and_its_activation(backend, fusion, dtype, activation):
    """``Affine -> Sigmoid`` and ``Affine -> Relu`` run as one ``ops.affine_forward`` in predict
    (counted), equal to the unfused layers to the kernel tolerances (float32 1e-5 here: the
    fused sigmoid is the fast backends' own exp), and the training path is the layers'."""
    from fastdl.models import MultiLayerNet

    make = lambda: MultiLayerNet(input_size=30, hidden_size_list=[20, 40], output_size=7,  # noqa: E731
                                 activation=activation, dtype=dtype, seed=5)
    x = np.random.default_rng(1).standard_normal((25, 30)).astype(dtype)
    fusion(False)
    want = make().predict(x)
    fusion(True)
    model = make()
    before = fused_counts().get(f"infer_affine_{activation}", 0)
    got = model.predict(x)
    assert fused_counts().get(f"infer_affine_{activation}", 0) == before + 2
    assert got.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    assert model.predict(x[:0]).shape == (0, 7)
    loss, grads = model.loss_and_gradient(x, np.zeros(25, np.int64))
    assert np.isfinite(loss) and grads["W1"].shape == (30, 20)
