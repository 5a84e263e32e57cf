"""The book's pretrained weights reproduce its MNIST test accuracies, on every backend.

Needs the shared data folder (``FASTDL_TEST_DATA``: mnist/ and book/);
skipped without it.  Exact in float64, within 0.0005 (5 images) in float32.
"""
import numpy as np
import pytest

from fastdl.datasets import read_idx
from fastdl.models import DeepConvNet, MultiLayerNet, SimpleConvNet

CASES = {
    # weight file: (model factory, input shape, accuracy in the data README, batch size)
    "sample_weight.pkl": (lambda dt: MultiLayerNet(784, [50, 100], 10, activation="sigmoid", dtype=dt),
                          (-1, 784), 0.9352, 1000),
    "simple_convnet_params.pkl": (lambda dt: SimpleConvNet(dtype=dt), (-1, 1, 28, 28), 0.9890, 500),
    "deep_convnet_params.pkl": (lambda dt: DeepConvNet(dtype=dt), (-1, 1, 28, 28), 0.9935, 200),
}


@pytest.fixture(scope="module")
def mnist_test(data_dir):
    x = read_idx(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
    t = read_idx(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10000, 28, 28) and t.shape == (10000,)
    return x / 255.0, t.astype(np.int64)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weights", list(CASES))
def test_book_accuracy(backend, data_dir, mnist_test, weights, dtype):
    make, shape, expected, batch = CASES[weights]
    x, t = mnist_test
    net = make(dtype)
    net.load_params(data_dir / "book" / weights)
    acc = net.accuracy(x.reshape(shape), t, batch_size=batch)
    if dtype == np.float64:
        assert acc == expected
    else:
        assert abs(acc - expected) <= 0.0005
