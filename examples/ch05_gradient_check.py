"""Book chapter 5 (gradient_check.py; also ch04/ch05 two_layer_net.py): backprop vs numerical gradients.

TwoLayerNet 784-50-10 in float64 on 3 training images: the mean |backprop - numerical|
per parameter (the book prints about 1e-10 to 1e-13), and fastdl.gradient.gradient_check's
relative error.  The book's ch04 TwoLayerNet uses sigmoid, fastdl's (like ch05's) ReLU.
--quick uses a 784-4-10 network.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.gradient import gradient_check
from fastdl.models import TwoLayerNet


def main() -> None:
    args = _common.parser(__doc__, data=True).parse_args()
    _common.setup(args)
    _, ((x, t), _) = _common.load_images(args)
    hidden = 4 if args.quick else 50
    net = TwoLayerNet(784, hidden, 10, dtype=np.float64, seed=args.seed)
    print("params: " + ", ".join(f"{k} {v.shape}" for k, v in net.params.items()))
    xb, tb = x[:3].astype(np.float64), t[:3]
    grad_numerical = net.numerical_gradient(xb, tb)
    grad_backprop = net.gradient(xb, tb)
    for key in grad_numerical:
        print(f"{key}:{np.average(np.abs(grad_backprop[key] - grad_numerical[key]))}")
    for key, err in gradient_check(net, xb, tb).items():
        print(f"{key}: relative error {err:.2e}")


if __name__ == "__main__":
    main()
