"""Book chapter 6 (batch_norm_gradient_check.py): backprop through batch normalisation.

MultiLayerNetExtend 784-100-100-10 with batch norm, float64: mean |backprop - numerical|
per parameter (W, b, gamma, beta).  The book uses one sample; fastdl's BatchNormalization
refuses a training batch of one (its variance is 0, the output is beta whatever the input),
so this uses two samples.  --quick uses hidden layers of 4.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.models import MultiLayerNetExtend


def main() -> None:
    args = _common.parser(__doc__, data=True).parse_args()
    _common.setup(args)
    _, ((x, t), _) = _common.load_images(args)
    hidden = 4 if args.quick else 100
    net = MultiLayerNetExtend(784, [hidden, hidden], 10, use_batchnorm=True, dtype=np.float64,
                              seed=args.seed)
    xb, tb = x[:2].astype(np.float64), t[:2]
    state = net.state_dict()
    grad_backprop = net.gradient(xb, tb)
    net.load_state_dict(state)
    grad_numerical = net.numerical_gradient(xb, tb)
    for key in grad_numerical:
        print(f"{key}:{np.average(np.abs(grad_backprop[key] - grad_numerical[key]))}")


if __name__ == "__main__":
    main()
