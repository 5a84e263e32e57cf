"""Book chapter 8 (misclassified_mnist.py, figure 8-4): the test images DeepConvNet gets wrong.

With the book's deep_convnet_params.pkl (float64), prints the test accuracy and the
{view index: (label, inference)} pairs, and draws the first 20 misclassified images.
--quick uses the first 1,000 test images.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.models import DeepConvNet
from fastdl.plots import misclassified_grid


def main() -> None:
    p = _common.add_weights_option(_common.parser(__doc__, data=True), "deep_convnet_params.pkl")
    args = p.parse_args()
    path = _common.setup_with_weights(args, "deep_convnet_params.pkl")
    net = DeepConvNet(dtype=np.float64)
    net.load_params(path)
    _, (x, t) = _common.load_test_images(args, flatten=False, dataset="mnist")
    n = 1000 if args.quick else len(x)
    x, t = x[:n], t[:n]
    y = np.concatenate([np.argmax(net.predict(x[i:i + 100]), axis=1) for i in range(0, n, 100)])
    print(f"test accuracy: {np.mean(y == t):.4f} ({n} images)")
    wrong = np.flatnonzero(y != t)[:20]
    print("======= misclassified result =======")
    print("{view index: (label, inference), ...}")
    print({i + 1: (int(t[k]), int(y[k])) for i, k in enumerate(wrong)})
    out = args.out / "ch08_misclassified_mnist.png"
    misclassified_grid(x, t, y, out, max_images=20, ncols=5)
    _common.saved(out)


if __name__ == "__main__":
    main()
