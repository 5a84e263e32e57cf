"""Book chapter 8 (half_float_network.py): how much accuracy survives 16-bit weights.

The book casts DeepConvNet's weights and inputs to float16 and computes in float16.
fastdl computes only in float32 or float64 (float16 is not a supported compute dtype), so
this example measures what can be measured honestly: the weights (and inputs) rounded to
float16 and converted back to float32, then inference in float32.  That isolates the
information lost by storing the numbers in 16 bits; it does not model float16 arithmetic
(rounding of every intermediate sum), which the book's numbers also include.
With the book's weights: float64 0.9935; weights through float16 gives the same to within
a few images.  --quick uses the first 200 test images.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.models import DeepConvNet


def main() -> None:
    p = _common.add_weights_option(_common.parser(__doc__, data=True), "deep_convnet_params.pkl")
    args = p.parse_args()
    _common.setup(args)
    path = _common.find_weights(args, "deep_convnet_params.pkl")
    _, (x, t) = _common.load_test_images(args, flatten=False, dataset="mnist")
    n = 200 if args.quick else len(x)
    x, t = x[:n], t[:n]
    net64 = DeepConvNet(dtype=np.float64)
    net64.load_params(path)
    print(f"accuracy, float64 weights and arithmetic: {net64.accuracy(x, t):.4f}")
    net32 = DeepConvNet(dtype=np.float32)
    net32.load_params(path)
    print(f"accuracy, float32 weights and arithmetic: {net32.accuracy(x, t):.4f}")
    worst = 0.0
    for key, param in net32.params.items():
        half = param.astype(np.float16)
        worst = max(worst, float(np.max(np.abs(half.astype(np.float64) - net64.params[key]))))
        param[...] = half.astype(np.float32)  # round to float16, compute in float32
    x16 = x.astype(np.float16).astype(np.float32)
    print(f"largest change of a weight by the float16 round trip: {worst:.2e}")
    print(f"accuracy, weights and inputs rounded to float16, float32 arithmetic: "
          f"{net32.accuracy(x16, t):.4f}")
    print("(float16 arithmetic itself is not run: fastdl computes in float32/float64 only)")


if __name__ == "__main__":
    main()
