"""Book chapter 8 (deep_convnet.py): the DeepConvNet with the book's trained weights.

Prints the layer sequence with each layer's output shape for one 28x28 image, and the
test accuracy of deep_convnet_params.pkl in float64 (0.9935 on all 10,000 MNIST test
images; --quick uses 200).
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.models import DeepConvNet


def describe(net, x: np.ndarray) -> None:
    print(f"input {x.shape}")
    for name, layer in net.layers.items():
        x = layer.forward(x, False) if hasattr(layer, "dropout_ratio") else layer.forward(x)
        print(f"  {name:9s} -> {tuple(x.shape)}")
    print(f"parameters: {sum(p.size for p in net.params.values()):,}")


def main() -> None:
    p = _common.add_weights_option(_common.parser(__doc__, data=True), "deep_convnet_params.pkl")
    args = p.parse_args()
    path = _common.setup_with_weights(args, "deep_convnet_params.pkl")
    net = DeepConvNet(dtype=np.float64)
    net.load_params(path)
    _, (x, t) = _common.load_test_images(args, flatten=False, dataset="mnist")
    n = 200 if args.quick else len(x)
    describe(net, x[:1].astype(np.float64))
    print(f"test accuracy (float64, {n} images): {net.accuracy(x[:n], t[:n]):.4f}")


if __name__ == "__main__":
    main()
