"""Book figures 6-10 to 6-14: activations of a 5-layer, 100-unit network on random input.

Rows: weights drawn with std 1, std 0.01, Xavier (sigmoid) and He (ReLU). With std 1 the
sigmoid outputs pile up at 0 and 1 (vanishing gradients); with 0.01 they all sit at 0.5
(no expressive power); Xavier keeps them spread, as does He for ReLU (histograms of the
ReLU rows show the positive activations only).
"""
from __future__ import annotations

import numpy as np

import _common
from fastdl.functions import relu, sigmoid
from fastdl.init import he_normal, normal, xavier_normal
from fastdl.plots import new_figure


def activations(x: np.ndarray, init, act, layers: int, rng) -> list[np.ndarray]:
    out = []
    for _ in range(layers):
        W = init((x.shape[1], 100), rng)
        x = act(x @ W)
        out.append(x)
    return out


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    _common.setup(args)
    n, layers = (200 if args.quick else 1000), 5
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((n, 100)).astype(np.float32)
    configs = [
        ("std 1, sigmoid", lambda s, r: normal(s, 1.0, r), sigmoid),
        ("std 0.01, sigmoid", lambda s, r: normal(s, 0.01, r), sigmoid),
        ("Xavier, sigmoid", xavier_normal, sigmoid),
        ("He, ReLU", he_normal, relu),
    ]
    fig = new_figure(3 * layers, 2.6 * len(configs))
    axes = fig.subplots(len(configs), layers)
    for row, (label, init, act) in zip(axes, configs):
        acts = activations(x, init, act, layers, rng)
        for i, (ax, a) in enumerate(zip(row, acts)):
            v = a.ravel()
            if act is relu:  # the zeros would dwarf everything else
                v = v[v > 0]
            ax.hist(v, bins=30, range=(0, 1), histtype="stepfilled")
            ax.set_title(f"{label}: layer {i + 1}", fontsize=9)
            ax.set_yticks([])
        print(f"{label:18s} layer-5 activation std {acts[-1].std():.4f}")
    _common.write_figure(args, fig, "ch06_weight_init_activation_histogram.png")


if __name__ == "__main__":
    main()
