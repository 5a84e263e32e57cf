"""Whole networks: SimpleConvNet and DeepConvNet gradients on every fast backend match the reference.

Same weights (same seed), same batch, same dropout masks (the dropout
generators are seeded from the model seed); only the backend differs.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl.models import DeepConvNet, SimpleConvNet

FAST = [name for name in fastdl.available_backends() if name != "numpy"]
TOL = {np.float64: 1e-9, np.float32: 1e-3}


def _loss_and_grads(model_cls, dtype, backend):
    rng = np.random.default_rng(0)
    x = rng.random((6, 1, 28, 28)).astype(dtype)
    t = rng.integers(0, 10, 6)
    net = model_cls(dtype=dtype, seed=1)
    with fastdl.use_backend(backend):
        return net.loss_and_gradient(x, t)


@pytest.mark.skipif(not FAST, reason="only the reference backend is available")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("model_cls", [SimpleConvNet, DeepConvNet], ids=lambda c: c.__name__)
@pytest.mark.parametrize("backend", FAST)
def test_gradients_match_the_reference(backend, model_cls, dtype):
    loss, grads = _loss_and_grads(model_cls, dtype, backend)
    ref_loss, ref_grads = _loss_and_grads(model_cls, dtype, "numpy")
    assert loss == pytest.approx(ref_loss, rel=TOL[dtype])
    assert grads.keys() == ref_grads.keys()
    for key, want in ref_grads.items():
        got = grads[key]
        assert got.dtype == want.dtype == dtype and got.shape == want.shape, key
        scale = float(np.max(np.abs(want))) or 1.0
        np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=key)
