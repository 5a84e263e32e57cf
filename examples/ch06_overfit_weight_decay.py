"""Book figures 6-20 and 6-21: overfitting, and weight decay against it.

A 7-layer network (six hidden layers of 100) trained on only 300 images with SGD
(lr 0.01): without regularisation the training accuracy reaches ~100% while the test
accuracy stalls; with weight decay (lambda 0.1) the gap shrinks.
"""
from __future__ import annotations

import _common
from fastdl.models import MultiLayerNet


def main() -> None:
    args = _common.parser(__doc__, data=True).parse_args()
    _common.setup(args)
    runs = [(f"weight decay lambda = {decay}" if decay else "no weight decay",
             lambda decay=decay: MultiLayerNet(784, [100] * 6, 10, weight_decay_lambda=decay, seed=args.seed))
            for decay in (0.0, 0.1)]
    _common.overfitting_figure(args, runs, 30 if args.quick else 200, "ch06_overfit_weight_decay.png")


if __name__ == "__main__":
    main()
