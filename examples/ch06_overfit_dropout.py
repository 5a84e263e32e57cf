"""Book figure 6-23: dropout against overfitting.

The overfitting setup of overfit_weight_decay.py (six hidden layers of 100, 300 training
images, SGD lr 0.01), without and with dropout (ratio 0.2) after every hidden layer.
"""
from __future__ import annotations

import _common
from fastdl.models import MultiLayerNetExtend


def main() -> None:
    args = _common.parser(__doc__, data=True).parse_args()
    _common.setup(args)
    runs = [(f"dropout ratio {ratio}" if ratio else "no dropout",
             lambda ratio=ratio: MultiLayerNetExtend(784, [100] * 6, 10, use_dropout=ratio > 0,
                                                     dropout_ration=ratio or 0.5, seed=args.seed))
            for ratio in (0.0, 0.2)]
    _common.overfitting_figure(args, runs, 30 if args.quick else 300, "ch06_overfit_dropout.png")


if __name__ == "__main__":
    main()
