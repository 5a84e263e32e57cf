"""IDX reader/writer, dataset lookup and loaders, spiral."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from fastdl import datasets
from fastdl.datasets import (find_dataset, load_fashion_mnist, load_idx_dir, load_mnist,
                             load_split, read_idx, spiral, write_idx)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No FASTDL_DATA, an empty HOME, and no Debian Fashion-MNIST directory."""
    monkeypatch.delenv("FASTDL_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    return tmp_path


def _fake_mnist(directory: Path, n_train=12, n_test=7, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        img = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        lab = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", img)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", lab)
        out[prefix] = (img, lab)
    return out


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_roundtrip(tmp_path, name, dtype):
    a = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    if dtype == np.uint8:
        a = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    write_idx(tmp_path / name, a)
    b = read_idx(tmp_path / name)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == a.shape
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable


def test_idx_mnist_magic_numbers(tmp_path):
    write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    write_idx(tmp_path / "i", np.zeros((4, 28, 28), np.uint8))
    assert int.from_bytes((tmp_path / "l").read_bytes()[:4], "big") == 2049
    assert int.from_bytes((tmp_path / "i").read_bytes()[:4], "big") == 2051


def test_compression_detected_by_content_not_name(tmp_path):
    a = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "raw", a)
    (tmp_path / "raw").rename(tmp_path / "misnamed.gz")
    np.testing.assert_array_equal(read_idx(tmp_path / "misnamed.gz"), a)
    (tmp_path / "gz_no_suffix").write_bytes(gzip.compress((tmp_path / "misnamed.gz").read_bytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "gz_no_suffix"), a)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file(tmp_path, gz):
    write_idx(tmp_path / "full", np.zeros((3, 28, 28), np.uint8))
    raw = (tmp_path / "full").read_bytes()[:-10]
    bad = tmp_path / "cut.idx"
    bad.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=r"cut\.idx.*truncated"):
        read_idx(bad)


def test_truncated_gzip_stream(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(1000, dtype=np.int32))
    data = (tmp_path / "a.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.gz.*(corrupt|truncated)"):
        read_idx(tmp_path / "cut.gz")


def test_truncated_header(tmp_path):
    (tmp_path / "h").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match=r"h: truncated IDX header"):
        read_idx(tmp_path / "h")


@pytest.mark.parametrize("head", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00",
                                  b"PK\x03\x04", b"\x00\x00"])
def test_bad_magic(tmp_path, head):
    (tmp_path / "bad").write_bytes(head + b"\x00\x00\x00\x01" + b"\x00")
    with pytest.raises(ValueError, match=r"bad"):
        read_idx(tmp_path / "bad")


def test_trailing_data(tmp_path):
    write_idx(tmp_path / "a", np.zeros(5, np.uint8))
    with open(tmp_path / "a", "ab") as fh:
        fh.write(b"xx")
    with pytest.raises(ValueError, match="trailing"):
        read_idx(tmp_path / "a")


def test_write_idx_rejects(tmp_path):
    with pytest.raises(TypeError):
        write_idx(tmp_path / "a", np.zeros(3, np.uint16))
    with pytest.raises(ValueError):
        write_idx(tmp_path / "a", np.zeros((), np.uint8))


def test_load_semantics(isolated):
    d = isolated / "m"
    ref = _fake_mnist(d)
    (x, t), (xt, tt) = load_mnist(path=d)
    assert x.shape == (12, 784) and x.dtype == np.float32 and xt.shape == (7, 784)
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_allclose(x, ref["train"][0].reshape(12, -1) / np.float32(255))
    np.testing.assert_array_equal(t, ref["train"][1])
    np.testing.assert_array_equal(tt, ref["t10k"][1])
    (x, t), _ = load_mnist(normalize=False, flatten=False, one_hot_label=True, path=d)
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[:, 0], ref["train"][0])
    assert t.shape == (12, 10) and t.dtype == np.float32
    np.testing.assert_array_equal(t.argmax(1), ref["train"][1])
    np.testing.assert_array_equal(t.sum(1), 1.0)


def test_raw_files_and_dotted_names(isolated):
    d = isolated / "raw"
    _fake_mnist(d, gz=False)
    (d / "t10k-images-idx3-ubyte").rename(d / "t10k-images.idx3-ubyte")
    (x, _), (xt, _) = load_idx_dir(d)
    assert x.shape == (12, 784) and xt.shape == (7, 784)


def test_mismatched_counts_and_wrong_ndim(isolated):
    d = isolated / "m"
    _fake_mnist(d)
    write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="12 images but 3 labels"):
        load_mnist(path=d)
    write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros((12, 2), np.uint8))
    with pytest.raises(ValueError, match="labels must be IDX1"):
        load_mnist(path=d)


def test_search_order(isolated, monkeypatch):
    given, env, cache = isolated / "given", isolated / "env", isolated / "home/.cache/fastdl"
    _fake_mnist(cache / "mnist", n_train=3)
    assert load_mnist()[0][0].shape[0] == 3
    _fake_mnist(env / "mnist", n_train=4)
    monkeypatch.setenv("FASTDL_DATA", str(env))
    assert load_mnist()[0][0].shape[0] == 4
    _fake_mnist(given, n_train=5)
    assert load_mnist(path=given)[0][0].shape[0] == 5
    # an incomplete directory is skipped, not mixed with another one
    (given / "train-labels-idx1-ubyte.gz").unlink()
    assert load_mnist(path=given)[0][0].shape[0] == 4


def test_fashion_searches_debian_dir(isolated, monkeypatch):
    deb = isolated / "debian"
    _fake_mnist(deb, n_train=6)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", deb)
    assert load_fashion_mnist()[0][0].shape[0] == 6
    with pytest.raises(FileNotFoundError):
        load_mnist()  # MNIST never falls back to the Fashion-MNIST directory


def test_missing_files_message(isolated, monkeypatch):
    monkeypatch.setenv("FASTDL_DATA", str(isolated / "envdir"))
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(path=isolated / "mine")
    msg = str(info.value)
    for part in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", str(isolated / "mine"),
                 str(isolated / "envdir" / "fashion-mnist"), ".cache/fastdl/fashion-mnist",
                 "no-debian", "apt-get install dataset-fashion-mnist"):
        assert part in msg, part
    with pytest.raises(FileNotFoundError, match="fastdl data --download mnist"):
        load_mnist()


def test_load_split_needs_only_that_split(isolated):
    d = isolated / "m"
    _fake_mnist(d)
    for f in d.glob("train-*"):
        f.unlink()
    x, t = load_split("mnist", "test", path=d, flatten=False)
    assert x.shape == (7, 1, 28, 28)
    with pytest.raises(FileNotFoundError):
        load_mnist(path=d)
    with pytest.raises(ValueError):
        find_dataset("cifar")


def test_real_mnist_test_set(data_dir, tmp_path):
    d = data_dir / "mnist"
    x, t = load_split("mnist", "test", path=d, normalize=False)
    assert x.shape == (10000, 784) and x.dtype == np.uint8
    assert t.shape == (10000,) and t.dtype == np.uint8
    assert set(np.unique(t)) == set(range(10))
    # Re-encoding what we read gives back the original files byte for byte.
    imgs = read_idx(d / "t10k-images-idx3-ubyte.gz")
    labs = read_idx(d / "t10k-labels-idx1-ubyte.gz")
    out = tmp_path
    write_idx(out / "i", imgs)
    write_idx(out / "l", labs)
    assert hashlib.md5((out / "i").read_bytes()).hexdigest() == "2646ac647ad5339dbf082846283269ea"
    assert hashlib.md5((out / "l").read_bytes()).hexdigest() == "27ae3e4e09519cfbb04c329615203637"
    assert hashlib.md5(gzip.decompress((d / "t10k-images-idx3-ubyte.gz").read_bytes())
                       ).hexdigest() == "2646ac647ad5339dbf082846283269ea"
    xn, _ = load_split("mnist", "test", path=d, flatten=False)
    assert xn.shape == (10000, 1, 28, 28) and xn.dtype == np.float32
    np.testing.assert_array_equal(xn.reshape(10000, -1) * np.float32(255), x.astype(np.float32))


def test_spiral():
    x, t = spiral()
    assert x.shape == (300, 2) and x.dtype == np.float32 and t.dtype == np.int64
    assert np.bincount(t).tolist() == [100, 100, 100]
    assert np.all(np.linalg.norm(x, axis=1) < 1.0)
    x2, t2 = spiral()
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(t, t2)
    x3, _ = spiral(seed=2020)
    assert not np.array_equal(x, x3)
    x4, t4 = spiral(n_per_class=7, n_classes=5)
    assert x4.shape == (35, 2) and t4.max() == 4
    with pytest.raises(ValueError):
        spiral(n_per_class=0)
