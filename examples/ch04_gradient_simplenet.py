"""Book chapter 4 (gradient_simplenet.py): the numerical gradient of a 2x3 network's loss.

simpleNet: scores = x @ W, loss = cross-entropy of softmax(scores) with label 2.  Prints
W and dL/dW (fastdl.gradient.numerical_gradient); each row of dL/dW sums to 0.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.functions import cross_entropy_error, softmax
from fastdl.gradient import numerical_gradient


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    _common.setup(args)
    W = np.random.default_rng(args.seed).standard_normal((2, 3))
    x = np.array([0.6, 0.9])
    t = np.array([0, 0, 1])

    def loss(_):
        return cross_entropy_error(softmax(x @ W), t)

    print("W =\n", W)
    print("loss =", loss(None))
    dW = numerical_gradient(loss, W)
    print("dW =\n", dW)
    print("row sums of dW:", np.round(dW.sum(axis=1), 8))


if __name__ == "__main__":
    main()
