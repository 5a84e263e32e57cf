"""Book chapter 3 (neuralnet_mnist.py, neuralnet_mnist_batch.py): inference with the book's weights.

The book's 784-50-100-10 network (sigmoid hidden layers, softmax output) from its
sample_weight.pkl, on the MNIST test set, in float64 as the book computes it: image by image
(neuralnet_mnist.py) and 100 at a time (neuralnet_mnist_batch.py).  Both give 0.9352 on all
10,000 images; --quick uses the first 1,000.
"""
from __future__ import annotations

import time

import numpy as np

import _common
from fastdl import io
from fastdl.functions import sigmoid, softmax


def predict(network: dict, x: np.ndarray) -> np.ndarray:
    z1 = sigmoid(x @ network["W1"] + network["b1"])
    z2 = sigmoid(z1 @ network["W2"] + network["b2"])
    return softmax(z2 @ network["W3"] + network["b3"])


def main() -> None:
    p = _common.add_weights_option(_common.parser(__doc__, data=True), "sample_weight.pkl")
    p.add_argument("--batch-size", type=int, default=100)
    args = p.parse_args()
    path = _common.setup_with_weights(args, "sample_weight.pkl")
    network = {k: v.astype(np.float64) for k, v in io.load_book_params(path).items()}
    _, (x, t) = _common.load_test_images(args, dataset="mnist")
    n = 1000 if args.quick else len(x)
    x, t = x[:n].astype(np.float64), t[:n]
    start = time.perf_counter()
    correct = sum(int(np.argmax(predict(network, x[i])) == t[i]) for i in range(n))
    t_one = time.perf_counter() - start
    print(f"one image at a time: Accuracy:{correct / n}  ({t_one:.3f} s)")
    start = time.perf_counter()
    correct = 0
    for i in range(0, n, args.batch_size):
        y = predict(network, x[i:i + args.batch_size])
        correct += int(np.sum(np.argmax(y, axis=1) == t[i:i + args.batch_size]))
    t_batch = time.perf_counter() - start
    print(f"batches of {args.batch_size}: Accuracy:{correct / n}  ({t_batch:.3f} s)")
    print(f"shapes: x {x[:args.batch_size].shape} -> W1 {network['W1'].shape} -> W2 "
          f"{network['W2'].shape} -> W3 {network['W3'].shape} -> y ({min(n, args.batch_size)}, 10)")


if __name__ == "__main__":
    main()
