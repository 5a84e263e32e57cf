"""Book chapter 7 (simple_convnet.py): SimpleConvNet, and the book's trained weights.

conv (30 filters 5x5) - relu - pool 2x2 - affine 4320-100 - relu - affine 100-10 - softmax.
Prints each layer's output shape for one image and, with the book's
simple_convnet_params.pkl (the ch07 params.pkl of its 2016 code), the test accuracy in
float64 (0.9890 on all 10,000 MNIST test images; --quick uses 500).
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.models import SimpleConvNet


def main() -> None:
    p = _common.add_weights_option(_common.parser(__doc__, data=True), "simple_convnet_params.pkl")
    args = p.parse_args()
    _common.setup(args)
    _common.check_dataset(args, "mnist")
    net = SimpleConvNet(input_dim=(1, 28, 28),
                        conv_param={"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},
                        hidden_size=100, output_size=10, weight_init_std=0.01, dtype=np.float64,
                        seed=args.seed)
    x = np.zeros((1, 1, 28, 28))
    print(f"input {x.shape}")
    for name, layer in net.layers.items():
        x = layer.forward(x)
        print(f"  {name:9s} -> {tuple(x.shape)}")
    print("parameters: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in net.params.items()))
    path = _common.find_weights(args, "simple_convnet_params.pkl", required=False)
    if path is None:
        print("the book's simple_convnet_params.pkl not found (--weights): accuracy not measured")
        return
    net.load_params(path)
    _, (xt, tt) = _common.load_test_images(args, flatten=False, dataset="mnist")
    n = 500 if args.quick else len(xt)
    print(f"test accuracy (float64, {n} images): {net.accuracy(xt[:n], tt[:n]):.4f}")


if __name__ == "__main__":
    main()
