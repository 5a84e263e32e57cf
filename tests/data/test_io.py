"""Weights I/O: npz round trip, atomic writes, strict loading, the safe book-pickle reader."""
import os
import pickle

import numpy as np
import pytest

from fastdl import io
from fastdl.models import MultiLayerNet, MultiLayerNetExtend, SimpleConvNet, TwoLayerNet


def params_of(net):
    return {k: v.copy() for k, v in net.params.items()}


def assert_params_equal(net, expected):
    assert set(net.params) == set(expected)
    for k, v in expected.items():
        np.testing.assert_array_equal(net.params[k], v)


def test_npz_round_trip(tmp_path):
    a = MultiLayerNetExtend(5, [4], 3, use_batchnorm=True, seed=0)
    a.layers["BatchNorm1"].running_mean = np.full(4, 0.25, np.float32)
    path = tmp_path / "w.npz"
    a.save_params(path)
    with np.load(path, allow_pickle=False) as z:  # a plain npz, no pickle inside
        assert set(z.files) == set(a.state_dict())
    b = MultiLayerNetExtend(5, [4], 3, use_batchnorm=True, seed=1)
    b.load_params(path)
    assert_params_equal(b, params_of(a))
    np.testing.assert_array_equal(b.layers["BatchNorm1"].running_mean, 0.25)
    assert b.layers["Affine1"].W is b.params["W1"]  # layers still see the loaded arrays
    assert os.listdir(tmp_path) == ["w.npz"]  # no temporary file left


def test_load_casts_to_model_dtype(tmp_path):
    a = TwoLayerNet(3, 4, 2, dtype=np.float64, seed=0)
    a.save_params(tmp_path / "w.npz")
    b = TwoLayerNet(3, 4, 2, seed=1)
    b.load_params(tmp_path / "w.npz")
    assert b.params["W1"].dtype == np.float32
    np.testing.assert_allclose(b.params["W1"], a.params["W1"], rtol=1e-7)


def test_format_detected_by_content(tmp_path):
    a = TwoLayerNet(3, 4, 2, seed=0)
    a.save_params(tmp_path / "weights.pkl")  # npz content under a .pkl name
    assert io.load_params_file(tmp_path / "weights.pkl").keys() == a.params.keys()


@pytest.mark.parametrize("change", ["missing", "extra", "shape", "dtype"])
def test_mismatch_raises_and_leaves_model_unchanged(tmp_path, change):
    net = MultiLayerNet(5, [4], 3, seed=0)
    state = {k: v + 1 for k, v in net.params.items()}
    if change == "missing":
        del state["b2"]
    elif change == "extra":
        state["W9"] = np.ones(2)
    elif change == "shape":
        state["W2"] = np.ones((4, 4))  # the last key: earlier keys would fit
    else:
        state["W2"] = state["W2"].astype(np.int64)
    io.save_params(state, tmp_path / "bad.npz")
    before = params_of(net)
    with pytest.raises(ValueError):
        net.load_params(tmp_path / "bad.npz")
    assert_params_equal(net, before)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    io.save_params({"a": np.arange(3.0)}, path)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        io.save_params({"a": np.zeros(3)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(io.load_params_file(path)["a"], [0.0, 1.0, 2.0])
    assert os.listdir(tmp_path) == ["w.npz"]


def test_corrupt_files_refused(tmp_path):
    good = tmp_path / "good.npz"
    io.save_params({"a": np.arange(100.0)}, good)
    data = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.bin").write_bytes(b"hello world")
    (tmp_path / "trunc.pkl").write_bytes(pickle.dumps({"a": np.ones(3)}, protocol=3)[:40])
    for name in ("trunc.npz", "junk.bin", "trunc.pkl"):
        with pytest.raises(io.WeightFileError):
            io.load_params_file(tmp_path / name)
    net = TwoLayerNet(3, 4, 2, seed=0)
    before = params_of(net)
    with pytest.raises(ValueError):
        net.load_params(tmp_path / "trunc.npz")
    assert_params_equal(net, before)


def test_book_pickle_reader(tmp_path):
    params = {"W1": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)), "b1": np.ones(3)}
    path = tmp_path / "book.pkl"
    path.write_bytes(pickle.dumps(params, protocol=3))
    loaded = io.load_book_params(path)
    assert loaded.keys() == params.keys()
    for k in params:
        np.testing.assert_array_equal(loaded[k], params[k])
        assert loaded[k].dtype == params[k].dtype
    assert io.load_params_file(path).keys() == params.keys()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", ["evil", "evil_in_dict", "builtin_eval", "not_a_dict", "object_array"])
def test_malicious_pickle_is_refused_not_run(tmp_path, payload):
    marker = tmp_path / "pwned"
    obj = {
        "evil": _Evil(marker),
        "evil_in_dict": {"W1": np.ones(2), "b1": _Evil(marker)},
        "builtin_eval": {"W1": (eval, ("1+1",))},
        "not_a_dict": [np.ones(2)],
        "object_array": {"W1": np.array([1, "a"], dtype=object)},
    }[payload]
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=3))
    with pytest.raises(io.WeightFileError):
        io.load_book_params(path)
    net = TwoLayerNet(2, 2, 2, seed=0)
    with pytest.raises(ValueError):
        net.load_params(path)
    assert not marker.exists()


def test_os_system_pickle_error_message(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Evil(tmp_path / "x"), protocol=3))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load .*system"):
        io.load_book_params(path)


def test_convnet_round_trip_float64(tmp_path):
    a = SimpleConvNet(input_dim=(1, 8, 8), conv_param={"filter_num": 2}, hidden_size=4, dtype=np.float64, seed=0)
    a.save_params(tmp_path / "c.npz")
    b = SimpleConvNet(input_dim=(1, 8, 8), conv_param={"filter_num": 2}, hidden_size=4, dtype=np.float64, seed=9)
    b.load_params(tmp_path / "c.npz")
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8))
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
