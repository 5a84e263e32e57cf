"""Optimizers: one and two steps against hand computation, dtype, state_dict round trip."""
import copy
import json

import numpy as np
import pytest

from fastdl.optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_optimizer

P0 = np.array([1.0, -2.0, 0.5])
G1 = np.array([0.5, 0.25, -1.0])
G2 = np.array([-0.1, 0.3, 0.2])


def two_steps(opt, dtype=np.float64):
    p = {"W": P0.astype(dtype)}
    ref = p["W"]
    opt.update(p, {"W": G1.astype(dtype)})
    first = p["W"].copy()
    opt.update(p, {"W": G2.astype(dtype)})
    assert p["W"] is ref and p["W"].dtype == dtype  # in place, dtype kept
    return first, p["W"]


def test_sgd():
    first, second = two_steps(SGD(lr=0.1))
    np.testing.assert_allclose(first, P0 - 0.1 * G1)
    np.testing.assert_allclose(second, P0 - 0.1 * G1 - 0.1 * G2)


def test_momentum():
    first, second = two_steps(Momentum(lr=0.1, momentum=0.9))
    v1 = -0.1 * G1
    v2 = 0.9 * v1 - 0.1 * G2
    np.testing.assert_allclose(first, P0 + v1)
    np.testing.assert_allclose(second, P0 + v1 + v2)


def test_nesterov():
    lr, mu = 0.1, 0.9
    first, second = two_steps(Nesterov(lr=lr, momentum=mu))
    p1 = P0 - (1 + mu) * lr * G1             # the velocity of the step before (0) is used
    v1 = -lr * G1
    np.testing.assert_allclose(first, p1)
    np.testing.assert_allclose(second, p1 + mu * mu * v1 - (1 + mu) * lr * G2)


def test_adagrad():
    first, second = two_steps(AdaGrad(lr=0.1))
    h1 = G1 ** 2
    p1 = P0 - 0.1 * G1 / (np.sqrt(h1) + 1e-7)
    h2 = h1 + G2 ** 2
    np.testing.assert_allclose(first, p1)
    np.testing.assert_allclose(second, p1 - 0.1 * G2 / (np.sqrt(h2) + 1e-7))


def test_rmsprop():
    first, second = two_steps(RMSprop(lr=0.1, decay_rate=0.99))
    h1 = 0.01 * G1 ** 2
    p1 = P0 - 0.1 * G1 / (np.sqrt(h1) + 1e-7)
    h2 = 0.99 * h1 + 0.01 * G2 ** 2
    np.testing.assert_allclose(first, p1)
    np.testing.assert_allclose(second, p1 - 0.1 * G2 / (np.sqrt(h2) + 1e-7))


def test_adam():
    lr, b1, b2 = 0.001, 0.9, 0.999
    first, second = two_steps(Adam())
    m1, v1 = (1 - b1) * G1, (1 - b2) * G1 ** 2
    p1 = P0 - lr * np.sqrt(1 - b2) / (1 - b1) * m1 / (np.sqrt(v1) + 1e-7)
    m2, v2 = m1 + (1 - b1) * (G2 - m1), v1 + (1 - b2) * (G2 ** 2 - v1)
    p2 = p1 - lr * np.sqrt(1 - b2 ** 2) / (1 - b1 ** 2) * m2 / (np.sqrt(v2) + 1e-7)
    np.testing.assert_allclose(first, p1)
    np.testing.assert_allclose(second, p2)


def test_book_defaults():
    assert SGD().lr == 0.01
    assert (Momentum().lr, Momentum().momentum) == (0.01, 0.9)
    assert (Nesterov().lr, Nesterov().momentum) == (0.01, 0.9)
    assert AdaGrad().lr == 0.01
    assert (RMSprop().lr, RMSprop().decay_rate) == (0.01, 0.99)
    assert (Adam().lr, Adam().beta1, Adam().beta2) == (0.001, 0.9, 0.999)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_float32_stays_float32_and_grads_untouched(name):
    opt = get_optimizer(name)
    p = {"W": np.ones((3, 2), np.float32), "b": np.zeros(2, np.float32)}
    g = {"W": np.full((3, 2), 0.5, np.float32), "b": np.ones(2, np.float64)}
    g_before = {k: v.copy() for k, v in g.items()}
    for _ in range(3):
        opt.update(p, g)
    assert p["W"].dtype == np.float32 and p["b"].dtype == np.float32
    for k in g:
        np.testing.assert_array_equal(g[k], g_before[k])
    for slots in opt.state_dict()["slots"].values():
        assert all(a.dtype == np.float32 for a in slots.values())


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_state_dict_round_trip(name):
    rng = np.random.default_rng(0)
    grads = [{"W": rng.standard_normal((2, 3)), "b": rng.standard_normal(3)} for _ in range(6)]
    a = get_optimizer(name, lr=0.05)
    pa = {"W": np.ones((2, 3)), "b": np.zeros(3)}
    for g in grads[:3]:
        a.update(pa, g)
    state = a.state_dict()
    json.dumps({k: v for k, v in state.items() if k != "slots"})  # scalar part is JSON-able
    b = get_optimizer(name)  # other lr: restored from the state
    b.load_state_dict(copy.deepcopy(state))
    assert b.lr == 0.05 and b.iter == 3
    pb = copy.deepcopy(pa)
    for g in grads[3:]:
        a.update(pa, g)
        b.update(pb, g)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    # the state is a copy: updating a does not change what was saved
    assert state["iter"] == 3


def test_load_state_dict_mismatch_leaves_optimizer_unchanged():
    adam = Adam(lr=0.01)
    p = {"W": np.ones(2)}
    adam.update(p, {"W": np.ones(2)})
    before = adam.state_dict()
    with pytest.raises(ValueError, match="momentum"):
        adam.load_state_dict(Momentum().state_dict())
    bad = adam.state_dict()
    bad["slots"] = {"m": {}}
    with pytest.raises(ValueError):
        adam.load_state_dict(bad)
    after = adam.state_dict()
    assert after["iter"] == before["iter"] and after["hyperparams"] == before["hyperparams"]
    np.testing.assert_array_equal(after["slots"]["m"]["W"], before["slots"]["m"]["W"])


def test_get_optimizer_names():
    assert isinstance(get_optimizer("SGD"), SGD)
    assert isinstance(get_optimizer("RMSprop", lr=0.1), RMSprop)
    assert isinstance(get_optimizer("AdaGrad"), AdaGrad)
    assert get_optimizer("Adam", lr=0.1, beta1=0.8).beta1 == 0.8
    with pytest.raises(ValueError, match="unknown optimizer"):
        get_optimizer("rmsprpo")
    with pytest.raises(ValueError):
        get_optimizer("sgd", momentum=0.9)
    with pytest.raises(ValueError):
        SGD(lr=-1)
    with pytest.raises(ValueError):
        SGD(lr=float("nan"))


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        SGD().update({"W": np.ones(3)}, {"W": np.ones(4)})
