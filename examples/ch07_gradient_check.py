"""Book chapter 7 (gradient_check.py): backprop vs numerical gradients of a small SimpleConvNet.

Input (1, 1, 10, 10) of uniform noise, 10 filters 3x3, hidden 10, label 1, float64: the mean
|numerical - backprop| per parameter.  The book passes the label as shape (1, 1); fastdl
takes integer labels of shape (N,), so it is np.array([1]) here.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.models import SimpleConvNet


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    _common.setup(args)
    net = SimpleConvNet(input_dim=(1, 10, 10),
                        conv_param={"filter_num": 10, "filter_size": 3, "pad": 0, "stride": 1},
                        hidden_size=10, output_size=10, weight_init_std=0.01, dtype=np.float64,
                        seed=args.seed)
    X = np.random.default_rng(args.seed).random((1, 1, 10, 10))
    T = np.array([1])
    grad_num = net.numerical_gradient(X, T)
    grad = net.gradient(X, T)
    for key in grad_num:
        print(key, np.abs(grad_num[key] - grad[key]).mean())


if __name__ == "__main__":
    main()
