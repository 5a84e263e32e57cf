"""Book chapter 8 (half_float_network.py): how much accuracy survives 16-bit numbers.

The book casts DeepConvNet's weights and inputs to float16 and computes in float16 with
NumPy.  fastdl computes only in float32 or float64 (``DeepConvNet(dtype=np.float16)`` raises
TypeError: float16 is not a supported compute dtype), so this example measures what can be
measured honestly, in three steps:

1. the book's float64 accuracy (0.9935 on all 10,000 MNIST test images) and float32's;
2. weights and inputs rounded to float16 and converted back to float32, float32 arithmetic:
   the information lost by *storing* the numbers in 16 bits;
3. as 2, and also every layer's output rounded to float16: activations stored in 16 bits.

It does not model float16 arithmetic inside a layer (each product and partial sum rounded),
which the book's numbers also include.  --quick uses the first 200 test images.
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.models import DeepConvNet


def main() -> None:
    p = _common.add_weights_option(_common.parser(__doc__, data=True), "deep_convnet_params.pkl")
    args = p.parse_args()
    path = _common.setup_with_weights(args, "deep_convnet_params.pkl")
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
    print(f"accuracy, also every layer's output rounded to float16: "
          f"{accuracy_half_activations(net32, x16, t):.4f}")
    print("(float16 arithmetic itself is not run: fastdl computes in float32/float64 only)")


def accuracy_half_activations(net, x: np.ndarray, t: np.ndarray, batch: int = 100) -> float:
    """Inference layer by layer, each output rounded to float16 and back to float32."""
    correct = 0
    for i in range(0, len(x), batch):
        h = x[i:i + batch]
        for layer in net.layers.values():
            h = layer.forward(h, False) if hasattr(layer, "dropout_ratio") else layer.forward(h)
            h = h.astype(np.float16).astype(np.float32)
        correct += int(np.sum(np.argmax(h, axis=1) == t[i:i + batch]))
    return correct / len(x)

if __name__ == "__main__":
    main()
